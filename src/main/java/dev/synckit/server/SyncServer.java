package dev.synckit.server;

import dev.synckit.server.auth.AuthRoutes;
import dev.synckit.server.auth.Authenticator;
import dev.synckit.server.config.Settings;
import dev.synckit.server.health.HealthRoutes;
import dev.synckit.server.pubsub.FanOut;
import dev.synckit.server.pubsub.LocalFanOut;
import dev.synckit.server.storage.MemoryStorage;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.sync.Awareness;
import dev.synckit.server.sync.Documents;
import dev.synckit.server.ws.Gateway;
import io.helidon.webserver.WebServerConfig;
import io.helidon.webserver.websocket.WsConfig;
import io.helidon.webserver.websocket.WsRouting;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.logging.Logger;

/** The parts of a running server, wired once; closing it releases them in reverse order. */
public final class SyncServer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(SyncServer.class.getName());
    /** How many recent deltas per document the in-memory store keeps for catch-up. */
    private static final int MEMORY_DELTAS_PER_DOCUMENT = 1000;

    private final StorageAdapter storage;
    private final FanOut fanOut;
    private final Documents documents;
    private final Gateway gateway;

    private SyncServer(StorageAdapter storage, FanOut fanOut, Documents documents, Gateway gateway) {
        this.storage = storage;
        this.fanOut = fanOut;
        this.documents = documents;
        this.gateway = gateway;
    }

    /** Adds the WebSocket endpoints and HTTP routes to a server under construction. */
    static SyncServer setup(WebServerConfig.Builder server, Settings settings) {
        Clock clock = Clock.systemUTC();
        if (settings.storage().postgres()) {
            throw new dev.synckit.server.config.ConfigException("PostgreSQL storage is not wired in yet; unset DATABASE_URL");
        }
        StorageAdapter storage = new MemoryStorage(MEMORY_DELTAS_PER_DOCUMENT);
        FanOut fanOut = new LocalFanOut();
        Documents documents = new Documents(storage, fanOut, settings.sync().maxCachedDocuments(),
                settings.sync().batchDelay());
        Awareness awareness = new Awareness(documents::subscribers, settings.sync().awarenessTimeout(), clock);
        Authenticator authenticator = new Authenticator(settings.auth(), clock);
        Gateway gateway = new Gateway(settings, authenticator, documents, awareness);

        server.addProtocol(WsConfig.builder()
                        .name("websocket")
                        // Frames up to the message cap are accepted; bigger single frames get close 1009.
                        .maxFrameLength(settings.limits().maxMessageBytes())
                        .build())
                .addRouting(WsRouting.builder()
                        .endpoint("/ws", gateway.listeners())
                        .endpoint("/", gateway.listeners()))
                .routing(routing -> {
                    routing.register("/", new HealthRoutes(gateway, documents));
                    authenticator.jwt().ifPresent(jwt -> routing.register("/auth",
                            new AuthRoutes(authenticator, jwt, settings.auth().accessTokenTtl(),
                                    settings.auth().refreshTokenTtl())));
                });
        LOG.info(() -> "storage: " + storage.describe() + "; fan-out: single instance");
        return new SyncServer(storage, fanOut, documents, gateway);
    }

    /**
     * Opens and closes one WebSocket to the server. Helidon 4.5.0 fills a shared upgrade header lazily and
     * can fail one of the first concurrent handshakes; doing one first avoids that for real clients.
     */
    static void warmUp(int port) {
        try (HttpClient client = HttpClient.newHttpClient()) {
            WebSocket ws = client.newWebSocketBuilder()
                    .buildAsync(URI.create("ws://127.0.0.1:" + port + "/ws"), new WebSocket.Listener() {
                    })
                    .get(5, TimeUnit.SECONDS);
            ws.sendClose(WebSocket.NORMAL_CLOSURE, "warm-up").get(5, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.warning("WebSocket warm-up handshake failed: " + e);
        }
    }

    public Documents documents() {
        return documents;
    }

    public Gateway gateway() {
        return gateway;
    }

    @Override
    public void close() {
        gateway.close();
        fanOut.close();
        storage.close();
    }

    static Duration uptime() {
        return Duration.ofMillis(java.lang.management.ManagementFactory.getRuntimeMXBean().getUptime());
    }
}
