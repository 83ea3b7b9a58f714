package dev.synckit.server.testing;

import dev.synckit.server.Main;
import dev.synckit.server.SyncServer;
import dev.synckit.server.config.Settings;
import io.helidon.config.Config;
import io.helidon.config.ConfigSources;
import io.helidon.webserver.WebServer;
import io.helidon.webserver.WebServerConfig;

import java.net.URI;
import java.util.HashMap;
import java.util.Map;

/**
 * A real server on a free port, wired by {@link Main#setup} like production, with settings from the
 * built-in defaults plus the given overrides (config keys, e.g. {@code synckit.auth.required}).
 */
public final class TestServer implements AutoCloseable {
    private final WebServer server;
    private final SyncServer app;
    private final Settings settings;

    private TestServer(Map<String, String> overrides) {
        Map<String, String> keys = new HashMap<>();
        keys.put("server.port", "0");
        keys.put("server.host", "127.0.0.1");
        keys.put("synckit.auth.required", "false");
        keys.putAll(overrides);
        Config config = Config.builder()
                .disableEnvironmentVariablesSource()
                .disableSystemPropertiesSource()
                .sources(ConfigSources.create(keys), ConfigSources.classpath("application.yaml"))
                .build();
        settings = Settings.from(config);
        WebServerConfig.Builder builder = WebServer.builder().config(config.get("server")).port(0).host("127.0.0.1");
        app = Main.setup(builder, settings);
        server = builder.build().start();
        if (!server.isRunning()) {
            throw new IllegalStateException("test server did not start");
        }
        try (WsClient warm = WsClient.binary(wsUri())) {
            warm.toString(); // one handshake first: see SyncServer.warmUp
        }
        app.serving();
    }

    /** Auth disabled, defaults otherwise. */
    public static TestServer start() {
        return new TestServer(Map.of());
    }

    public static TestServer start(Map<String, String> overrides) {
        return new TestServer(overrides);
    }

    public int port() {
        return server.port();
    }

    public URI wsUri() {
        return URI.create("ws://127.0.0.1:" + port() + "/ws");
    }

    public URI httpUri(String path) {
        return URI.create("http://127.0.0.1:" + port() + path);
    }

    public SyncServer app() {
        return app;
    }

    public Settings settings() {
        return settings;
    }

    @Override
    public void close() {
        app.close();
        server.stop();
    }
}
