package dev.synckit.server;

import dev.synckit.server.api.HttpApi;
import dev.synckit.server.auth.AuthRoutes;
import dev.synckit.server.auth.Authenticator;
import dev.synckit.server.cluster.Writes;
import dev.synckit.server.config.Settings;
import dev.synckit.server.health.HealthRoutes;
import dev.synckit.server.http.RouteTable;
import dev.synckit.server.pubsub.FanOut;
import dev.synckit.server.pubsub.LocalFanOut;
import dev.synckit.server.pubsub.RedisFanOut;
import dev.synckit.server.status.InstanceStats;
import dev.synckit.server.status.StatusRoutes;
import dev.synckit.server.storage.MemoryStorage;
import dev.synckit.server.storage.PostgresStorage;
import dev.synckit.server.storage.StorageException;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.sync.Awareness;
import dev.synckit.server.sync.Documents;
import dev.synckit.server.webhooks.Webhooks;
import dev.synckit.server.ws.Gateway;
import io.helidon.http.Method;
import io.helidon.webserver.WebServerConfig;
import io.helidon.webserver.websocket.WsConfig;
import io.helidon.webserver.websocket.WsRouting;

import io.helidon.webserver.observe.ObserveFeature;
import io.helidon.webserver.observe.metrics.MetricsObserver;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.time.Clock;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.logging.Logger;

/** The parts of a running server, wired once; closing it releases them in reverse order. */
public final class SyncServer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(SyncServer.class.getName());
    /** How many recent deltas per document the in-memory store keeps for catch-up. */
    private static final int MEMORY_APPLIED_IDS_PER_DOCUMENT = 1000;

    private final StorageAdapter storage;
    private final FanOut fanOut;
    private final Documents documents;
    private final Writes writes;
    private final Gateway gateway;
    private final ScheduledExecutorService cleanup;
    private final AtomicReference<HealthRoutes.Phase> phase;
    private final RouteTable routes;
    private final InstanceStats stats;
    /** Null when no webhook URL is configured. */
    private final Webhooks webhooks;

    private SyncServer(StorageAdapter storage, FanOut fanOut, Documents documents, Writes writes, Gateway gateway,
                       ScheduledExecutorService cleanup, AtomicReference<HealthRoutes.Phase> phase, RouteTable routes,
                       InstanceStats stats, Webhooks webhooks) {
        this.routes = routes;
        this.stats = stats;
        this.webhooks = webhooks;
        this.writes = writes;
        this.phase = phase;
        this.cleanup = cleanup;
        this.storage = storage;
        this.fanOut = fanOut;
        this.documents = documents;
        this.gateway = gateway;
    }

    /** Adds the WebSocket endpoints and HTTP routes to a server under construction. */
    static SyncServer setup(WebServerConfig.Builder server, Settings settings) {
        Clock clock = Clock.systemUTC();
        StorageAdapter storage = openStorage(settings.storage());
        FanOut fanOut = openFanOut(settings);
        Documents documents = new Documents(storage, fanOut, settings.sync().maxCachedDocuments(),
                settings.sync().batchDelay(), settings.limits().maxDocumentBytes());
        Webhooks webhooks = settings.webhooks().enabled() ? Webhooks.start(settings.webhooks()) : null;
        if (webhooks != null) {
            documents.onCommitted(webhooks::changed);
        }
        Awareness awareness = new Awareness(documents::subscribers, fanOut, settings.sync().awarenessTimeout(), clock);
        fanOut.start(new FanOut.Remote() {
            @Override
            public void write(FanOut.RemoteWrite write) {
                documents.applyRemote(write);
            }

            @Override
            public void presence(String documentId, String clientId, com.fasterxml.jackson.databind.JsonNode state, long c) {
                awareness.remote(documentId, clientId, state, c);
            }

            @Override
            public void resync(String documentId) {
                documents.resync(documentId);
                awareness.resync(documentId);
            }
        });
        Authenticator authenticator = new Authenticator(settings.auth(), clock);
        Writes writes = openWrites(settings, documents, storage, fanOut);
        Gateway gateway = new Gateway(settings, authenticator, documents, writes, awareness);
        AtomicReference<HealthRoutes.Phase> phase = new AtomicReference<>(HealthRoutes.Phase.STARTING);
        RouteTable routes = new RouteTable();
        HealthRoutes health = new HealthRoutes(routes, gateway, documents, storage, fanOut, writes, phase::get, authenticator);
        InstanceStats stats = new InstanceStats(gateway, documents, writes, fanOut, health::checks).start();

        server.addProtocol(WsConfig.builder()
                        .name("websocket")
                        // Frames up to the message cap are accepted; bigger single frames get close 1009.
                        .maxFrameLength(settings.limits().maxMessageBytes())
                        .build())
                .addFeature(ObserveFeature.builder()
                        .endpoint("/")
                        .addObserver(MetricsObserver.create())
                        .build())
                .addRouting(WsRouting.builder()
                        .endpoint("/ws", gateway.listeners())
                        .endpoint("/", gateway.listeners()))
                .routing(routing -> {
                    routing.register("/", health);
                    routing.register("/status", new StatusRoutes(routes, stats, authenticator));
                    authenticator.jwt().ifPresent(jwt -> routing.register("/auth",
                            new AuthRoutes(routes, authenticator, jwt, settings.auth())));
                    HttpApi.register(routing, routes, storage, documents, writes, authenticator, settings.limits().maxMessageBytes(),
                            id -> {
                                if (webhooks != null) {
                                    webhooks.deleted(id);
                                }
                            });
                });
        routes.served(Method.GET, "/metrics");
        routes.served(Method.GET, "/ws");
        if (settings.auth().devLogin()) {
            LOG.warning("synckit.auth.dev-login is on: POST /auth/login signs tokens for any email and password."
                    + " Development only; never enable it in a deployment");
        }
        LOG.info(() -> "storage: " + storage.describe() + "; fan-out: " + fanOut.describe());
        return new SyncServer(storage, fanOut, documents, writes, gateway, scheduleCleanup(storage, settings.storage()), phase,
                routes, stats, webhooks);
    }

    /** PostgreSQL when configured (failing startup if it is unusable), otherwise the in-memory store. */
    private static StorageAdapter openStorage(Settings.Storage settings) {
        if (!settings.postgres()) {
            return new MemoryStorage(MEMORY_APPLIED_IDS_PER_DOCUMENT);
        }
        try {
            return PostgresStorage.open(settings);
        } catch (StorageException e) {
            throw new StartupException(e.getMessage(), e);
        }
    }

    /**
     * One owner per document when several instances can meet (Redis) on one durable store; otherwise every
     * write commits here, with no extra hop.
     */
    private static Writes openWrites(Settings settings, Documents documents, StorageAdapter storage, FanOut fanOut) {
        if (settings.cluster().ownership() && fanOut instanceof RedisFanOut redis && settings.storage().postgres()) {
            LOG.info(() -> "document ownership on: lease " + settings.cluster().lease().toMillis() + " ms, instance "
                    + redis.instanceId());
            return Writes.owned(documents, storage, redis, settings.cluster());
        }
        return Writes.local(documents);
    }

    private static FanOut openFanOut(Settings settings) {
        if (!settings.redis().enabled()) {
            return new LocalFanOut();
        }
        try {
            return RedisFanOut.connect(settings.redis(), settings.sync().awarenessTimeout());
        } catch (IllegalStateException e) {
            throw new StartupException(e.getMessage(), e);
        }
    }

    /** A dependency the configuration asks for is not usable; the message says what to do. */
    public static final class StartupException extends RuntimeException {
        StartupException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** Deletes old deltas, applied message ids and sessions on the configured interval. */
    private static ScheduledExecutorService scheduleCleanup(StorageAdapter storage, Settings.Storage settings) {
        ScheduledExecutorService cleanup = Executors.newSingleThreadScheduledExecutor(Thread.ofVirtual().name("storage-cleanup").factory());
        long every = settings.cleanupInterval().toMillis();
        if (every > 0) {
            cleanup.scheduleWithFixedDelay(() -> {
                try {
                    StorageAdapter.Cleanup removed = storage.cleanup(settings.deltaRetention(), settings.sessionRetention());
                    LOG.info(() -> removed.skipped() ? "cleanup skipped: another instance is cleaning up"
                            : "cleanup removed " + removed.deltas() + " deltas, " + removed.appliedMessages()
                            + " applied message ids, " + removed.sessions() + " sessions");
                } catch (StorageException | RuntimeException e) {
                    LOG.warning("cleanup failed (will retry next interval): " + e.getMessage());
                }
            }, every, every, TimeUnit.MILLISECONDS);
        }
        return cleanup;
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

    public StorageAdapter storage() {
        return storage;
    }

    public Writes writes() {
        return writes;
    }

    public Gateway gateway() {
        return gateway;
    }

    /** Every HTTP route registered, for checking the OpenAPI description. */
    public RouteTable routes() {
        return routes;
    }

    public java.util.Optional<Webhooks> webhooks() {
        return java.util.Optional.ofNullable(webhooks);
    }

    /** The web server is up: readiness may report UP. */
    public void serving() {
        phase.set(HealthRoutes.Phase.SERVING);
    }

    /** Readiness reports DOWN from now on, so load balancers stop sending new clients. */
    public void draining() {
        phase.set(HealthRoutes.Phase.DRAINING);
    }

    /**
     * Graceful shutdown (SIGTERM): not ready, no new connections, in-flight writes committed and
     * acknowledged, then every client closed with 1012 so it reconnects elsewhere; all within
     * {@code grace}. The caller stops the web server and then {@link #close}s.
     */
    public void shutDownGracefully(Duration grace) {
        long start = System.nanoTime();
        draining();
        // Leases first: other instances stop forwarding here and take the documents over at once, so the wait
        // below is for this instance's own clients only (with forwarded writes arriving all the time it could
        // last the whole grace).
        writes.drain();
        int unfinished = gateway.drain(grace);
        if (unfinished > 0) {
            LOG.warning(unfinished + " message(s) still being handled when the shutdown grace ran out");
        }
        Duration left = grace.minusNanos(System.nanoTime() - start);
        gateway.closeConnections(left.isNegative() ? Duration.ZERO : left);
        LOG.info(() -> "drained in " + Duration.ofNanos(System.nanoTime() - start).toMillis() + " ms");
    }

    @Override
    public void close() {
        draining();
        cleanup.shutdownNow();
        stats.close(); // before the fan-out: its Redis exchange uses the fan-out's client
        gateway.close();
        documents.close();
        // Leases go before storage finishes (already at the start of a graceful shutdown): the others take
        // over at once, and whatever still commits here with the old epoch is either in before their claim or
        // refused and re-sent to them.
        writes.drain();
        // Storage first: the writes it still commits are announced to the other instances through the
        // fan-out, which then gets to publish them before it closes.
        storage.close();
        writes.close();
        fanOut.close();
        // Last: storage has settled its final commits into it, and its grace should not delay the fan-out.
        if (webhooks != null) {
            webhooks.close();
        }
    }

    static Duration uptime() {
        return Duration.ofMillis(java.lang.management.ManagementFactory.getRuntimeMXBean().getUptime());
    }
}
