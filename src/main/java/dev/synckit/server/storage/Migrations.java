package dev.synckit.server.storage;

import dev.synckit.server.config.DatabaseUrl;
import org.flywaydb.core.Flyway;
import org.flywaydb.core.api.MigrationInfo;
import org.flywaydb.core.api.output.MigrateResult;

import javax.sql.DataSource;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import java.util.logging.Logger;

/**
 * The schema, versioned by Flyway ({@code db/migration}). V1 is idempotent and the baseline is 0, so a
 * database the TS server already created is adopted by running V1 over it (STORAGE.md §2.4).
 */
public final class Migrations {
    private static final Logger LOG = Logger.getLogger(Migrations.class.getName());

    /**
     * Session advisory lock held while migrating. Flyway locks only around applying migrations, not around
     * creating and baselining its history table, so instances starting together on an empty database race:
     * one creates the table, the next finds it empty and refuses to baseline.
     */
    private static final long MIGRATION_LOCK = 0x53796e634b697400L; // "SyncKit\0"

    private Migrations() {
    }

    private static Flyway flyway(DataSource ds) {
        return Flyway.configure()
                .dataSource(ds)
                .locations("classpath:db/migration")
                .baselineOnMigrate(true)
                .baselineVersion("0")
                .load();
    }

    /** The newest migration this build ships, e.g. "2". */
    public static String latestVersion(DataSource ds) {
        MigrationInfo[] all = flyway(ds).info().all();
        return all[all.length - 1].getVersion().getVersion();
    }

    public static void migrate(DataSource ds, DatabaseUrl url) throws StorageException {
        // A connection of its own, outside the pool, so a pool of one still leaves Flyway a connection.
        try (Connection lock = lockSession(url);
             Statement st = lock.createStatement()) {
            st.execute("SELECT pg_advisory_lock(" + MIGRATION_LOCK + ")");
            MigrateResult result = flyway(ds).migrate();
            LOG.info(() -> "schema of " + url.masked() + ": " + result.migrationsExecuted + " migration(s) applied, now at "
                    + (result.targetSchemaVersion == null ? "current" : "v" + result.targetSchemaVersion));
        } catch (RuntimeException | SQLException e) {
            throw new StorageException("migrating the schema of " + url.masked() + " failed: "
                    + PostgresStorage.rootMessage(e), e);
        }
        // Closing the session released the lock.
    }

    private static Connection lockSession(DatabaseUrl url) throws SQLException {
        Properties props = new Properties();
        if (url.user() != null) {
            props.setProperty("user", url.user());
        }
        if (url.password() != null) {
            props.setProperty("password", url.password());
        }
        props.setProperty("connectTimeout", "10");
        return DriverManager.getConnection(url.jdbcUrl(), props);
    }

    /** Fails unless every known migration has been applied (for deployments that migrate in a separate job). */
    public static void requireCurrent(DataSource ds, DatabaseUrl url) throws StorageException {
        MigrationInfo[] pending;
        try {
            pending = flyway(ds).info().pending();
        } catch (RuntimeException e) {
            throw new StorageException("reading the schema version of " + url.masked() + " failed: "
                    + PostgresStorage.rootMessage(e), e);
        }
        if (pending.length > 0) {
            throw new StorageException("the schema of " + url.masked() + " is not current (" + pending.length
                    + " migration(s) pending, first v" + pending[0].getVersion() + "); run"
                    + " `java -jar synckit-server.jar migrate` or set synckit.storage.migrate-on-start: true", null);
        }
    }
}
