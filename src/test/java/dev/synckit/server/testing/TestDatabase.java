package dev.synckit.server.testing;

import org.testcontainers.DockerClientFactory;
import org.testcontainers.postgresql.PostgreSQLContainer;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.UUID;

/**
 * A PostgreSQL database of its own for one test, dropped afterwards. The server comes from Testcontainers
 * when a Docker engine is available, otherwise from {@code SYNCKIT_TEST_DB_URL} (a JDBC URL of a role that
 * may create databases; default the local service as {@code postgres}). If neither is reachable the test
 * fails and says how to provide one: it never silently skips.
 */
public final class TestDatabase implements AutoCloseable {
    private static final String DEFAULT_URL = "jdbc:postgresql://127.0.0.1:5432/postgres?user=postgres";
    private static volatile String adminUrl;

    private final String name;
    private final String url;

    private TestDatabase(String name, String url) {
        this.name = name;
        this.url = url;
    }

    /** Creates a fresh, empty database. */
    public static TestDatabase create() {
        String admin = adminUrl();
        String name = "synckit_t_" + UUID.randomUUID().toString().replace("-", "").substring(0, 16);
        exec(admin, "CREATE DATABASE " + name);
        return new TestDatabase(name, withDatabase(admin, name));
    }

    /** A JDBC URL of this database, credentials in the query string. */
    public String url() {
        return url;
    }

    /** Host and port of the database server, e.g. to put a {@link TcpProxy} in front of it. */
    public java.net.URI address() {
        return java.net.URI.create(url.substring("jdbc:".length()));
    }

    /** The same database reached through another loopback port. */
    public String urlVia(int port) {
        java.net.URI a = address();
        return url.replaceFirst("//" + java.util.regex.Pattern.quote(a.getHost() + ":" + a.getPort()) + "/",
                "//127.0.0.1:" + port + "/");
    }

    public Connection connect() throws SQLException {
        return DriverManager.getConnection(url);
    }

    @Override
    public void close() {
        exec(adminUrl(), "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
    }

    private static synchronized String adminUrl() {
        if (adminUrl != null) {
            return adminUrl;
        }
        String configured = System.getenv("SYNCKIT_TEST_DB_URL");
        String candidate;
        String source;
        if (configured == null && DockerClientFactory.instance().isDockerAvailable()) {
            PostgreSQLContainer container = new PostgreSQLContainer("postgres:16-alpine");
            container.start();
            Runtime.getRuntime().addShutdownHook(new Thread(container::stop));
            candidate = container.getJdbcUrl() + (container.getJdbcUrl().contains("?") ? "&" : "?")
                    + "user=" + container.getUsername() + "&password=" + container.getPassword();
            source = "Testcontainers";
        } else {
            candidate = configured != null ? configured : DEFAULT_URL;
            source = configured != null ? "SYNCKIT_TEST_DB_URL" : "the default local service";
        }
        try (Connection c = DriverManager.getConnection(candidate)) {
            c.isValid(2);
        } catch (SQLException e) {
            throw new IllegalStateException("PostgreSQL for the tests is not reachable at " + candidate.replaceAll("password=[^&]*", "password=***")
                    + " (from " + source + "): " + e.getMessage() + ". Start the local service"
                    + " (pg_ctlcluster --skip-systemctl-redirect <version> main start), point SYNCKIT_TEST_DB_URL at a"
                    + " JDBC URL of a role with CREATEDB, or make a Docker engine available for Testcontainers.", e);
        }
        adminUrl = candidate;
        return candidate;
    }

    static String withDatabase(String jdbcUrl, String database) {
        int query = jdbcUrl.indexOf('?');
        String base = query < 0 ? jdbcUrl : jdbcUrl.substring(0, query);
        String params = query < 0 ? "" : jdbcUrl.substring(query);
        int slash = base.lastIndexOf('/');
        return base.substring(0, slash + 1) + database + params;
    }

    private static void exec(String jdbcUrl, String sql) {
        try (Connection c = DriverManager.getConnection(jdbcUrl); Statement s = c.createStatement()) {
            s.execute(sql);
        } catch (SQLException e) {
            throw new IllegalStateException(sql + " failed: " + e.getMessage(), e);
        }
    }
}
