package dev.synckit.server;

import dev.synckit.server.config.ConfigException;
import dev.synckit.server.config.ConfigLayers;
import dev.synckit.server.config.Settings;
import io.helidon.logging.common.LogConfig;
import io.helidon.webserver.WebServer;
import io.helidon.webserver.WebServerConfig;

import java.time.Duration;
import java.util.logging.Logger;

/** Starts the server: {@code java -jar synckit-server.jar [--config FILE]}. */
public final class Main {
    private static final Logger LOG = Logger.getLogger(Main.class.getName());

    private Main() {
    }

    /** {@code java -jar synckit-server.jar [migrate | bench …] [--config FILE]} */
    public static void main(String[] args) {
        if (args.length > 0 && args[0].equals("bench")) {
            dev.synckit.server.bench.Bench.main(args);
            return;
        }
        LogConfig.configureRuntime();
        ConfigLayers.Layered layered;
        Settings settings;
        try {
            layered = ConfigLayers.load(args, System.getenv(), System.getProperties());
            layered.sources().forEach(s -> LOG.info("config source: " + s));
            settings = Settings.from(layered.config());
        } catch (ConfigException e) {
            LOG.severe("Invalid configuration: " + e.getMessage());
            System.exit(2);
            return;
        }
        LOG.info("settings: " + settings.describe());
        Settings.obsolete(layered.config()).forEach(LOG::warning);
        if (args.length > 0 && args[0].equals("migrate")) {
            System.exit(migrate(settings));
        }

        WebServerConfig.Builder builder = WebServer.builder()
                .config(layered.config().get("server"))
                .host(settings.server().host())
                .port(settings.server().port())
                // Our own hook drains first; Helidon's would drop every socket at once (1006).
                .shutdownHook(false);
        SyncServer app;
        try {
            app = setup(builder, settings);
        } catch (SyncServer.StartupException e) {
            LOG.severe("Cannot start: " + e.getMessage());
            System.exit(1);
            return;
        }
        WebServer server = builder.build().start();
        if (!server.isRunning()) {
            LOG.severe("The web server did not start (is port " + settings.server().port()
                    + " in use? set PORT or server.port)");
            app.close();
            System.exit(1);
        }
        SyncServer.warmUp(server.port());
        app.serving();
        Duration grace = settings.websocket().shutdownGrace();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            app.shutDownGracefully(grace);
            server.stop();
            app.close();
        }, "synckit-shutdown"));
        LOG.info("SyncKit server ready on ws://" + settings.server().host() + ":" + server.port() + "/ws in "
                + SyncServer.uptime().toMillis() + " ms");
    }

    /** {@code migrate}: applies the schema migrations and exits (for a Kubernetes init job). */
    private static int migrate(Settings settings) {
        if (!settings.storage().postgres()) {
            LOG.severe("migrate needs PostgreSQL: set DATABASE_URL (synckit.storage.url)");
            return 2;
        }
        var storage = settings.storage();
        var url = dev.synckit.server.config.DatabaseUrl.parse(storage.url(), storage.user(), storage.password());
        try {
            dev.synckit.server.storage.PostgresStorage.migrate(url, storage.connectTimeout());
            return 0;
        } catch (dev.synckit.server.storage.StorageException e) {
            LOG.severe(e.getMessage());
            return 1;
        }
    }

    /** Wires the server into a builder; used by {@link #main} and by the tests. */
    public static SyncServer setup(WebServerConfig.Builder server, Settings settings) {
        return SyncServer.setup(server, settings);
    }
}
