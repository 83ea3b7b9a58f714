package dev.synckit.server.storage;

import dev.synckit.server.config.DatabaseUrl;
import com.fasterxml.jackson.databind.JsonNode;
import com.zaxxer.hikari.HikariDataSource;
import dev.synckit.server.config.Settings;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.testing.TestDatabase;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Flyway migrations on empty and TS-created databases, schema checks, and how database locations are read. */
class MigrationTest {
    private static final Set<String> TABLES = Set.of("documents", "vector_clocks", "deltas", "sessions", "snapshots",
            "synckit_applied_messages", "synckit_owner_epochs", "flyway_schema_history");

    private static Settings.Storage settings(String url, boolean migrate) {
        return new Settings.Storage("postgres", url, "", "", 4, Duration.ofSeconds(5), migrate, 1, 1, Duration.ZERO,
                Duration.ofDays(30), Duration.ofHours(24),
                Duration.ofSeconds(5), Duration.ofSeconds(2), 1000, 200);
    }

    private static HikariDataSource dataSource(TestDatabase db) throws StorageException {
        return PostgresStorage.dataSource(location(db), 2, Duration.ofSeconds(5));
    }

    private static DatabaseUrl location(TestDatabase db) {
        return DatabaseUrl.parse(db.url(), "", "");
    }

    private static JsonNode json(String text) throws IOException {
        return Json.MAPPER.readTree(text);
    }

    private static void exec(TestDatabase db, String sql) throws SQLException {
        try (Connection c = db.connect(); Statement s = c.createStatement()) {
            s.execute(sql);
        }
    }

    private static List<List<String>> rows(TestDatabase db, String query) throws SQLException {
        try (Connection c = db.connect(); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(query)) {
            List<List<String>> out = new ArrayList<>();
            int n = rs.getMetaData().getColumnCount();
            while (rs.next()) {
                List<String> row = new ArrayList<>();
                for (int i = 1; i <= n; i++) {
                    row.add(rs.getString(i));
                }
                out.add(row);
            }
            return out;
        }
    }

    private static String one(TestDatabase db, String query) throws SQLException {
        List<List<String>> rows = rows(db, query);
        assertEquals(1, rows.size(), query);
        return rows.getFirst().getFirst();
    }

    private static Set<String> names(TestDatabase db, String query) throws SQLException {
        Set<String> out = new TreeSet<>();
        rows(db, query).forEach(r -> out.add(r.getFirst()));
        return out;
    }

    private static String fixture() throws IOException {
        try (InputStream in = MigrationTest.class.getResourceAsStream("/fixtures/upstream-ts-schema.sql")) {
            assertTrue(in != null, "fixtures/upstream-ts-schema.sql on the test class path");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static void assertSchemaComplete(TestDatabase db) throws SQLException {
        Set<String> tables = names(db, "SELECT table_name FROM information_schema.tables"
                + " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'");
        assertTrue(tables.containsAll(TABLES), "tables: " + tables);
        assertEquals(Set.of("documents_with_clocks"),
                names(db, "SELECT table_name FROM information_schema.views WHERE table_schema = 'public'"));
        assertEquals(new TreeSet<>(Set.of("increment_documents_version", "update_documents_updated_at")),
                names(db, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'documents'::regclass AND NOT tgisinternal"));
        Set<String> functions = names(db, "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                + " WHERE n.nspname = 'public'");
        assertTrue(functions.containsAll(Set.of("update_updated_at_column", "increment_document_version",
                "cleanup_old_sessions", "cleanup_old_deltas")), "functions: " + functions);
        Set<String> documentColumns = names(db, "SELECT column_name FROM information_schema.columns"
                + " WHERE table_schema = 'public' AND table_name = 'documents'");
        assertTrue(documentColumns.containsAll(Set.of("id", "state", "created_at", "updated_at", "version", "seq",
                "text_state", "data_types")), "documents columns: " + documentColumns);
        assertTrue(names(db, "SELECT column_name FROM information_schema.columns"
                + " WHERE table_schema = 'public' AND table_name = 'deltas'").contains("seq"));
        assertEquals("1", one(db, "SELECT COUNT(*) FROM pg_extension WHERE extname = 'uuid-ossp'"));
        // The view answers with the columns the TS server defines.
        assertEquals(List.of("id", "state", "version", "created_at", "updated_at", "vector_clock"),
                rows(db, "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
                        + " AND table_name = 'documents_with_clocks' ORDER BY ordinal_position").stream()
                        .map(List::getFirst).toList());
    }

    private static List<List<String>> history(TestDatabase db) throws SQLException {
        return rows(db, "SELECT COALESCE(version, '-'), type, success::text FROM flyway_schema_history ORDER BY installed_rank");
    }

    // ---- (1) empty database -------------------------------------------------------------------------

    @Test
    void migrationsApplyToAnEmptyDatabaseAndAreIdempotent() throws Exception {
        try (TestDatabase db = TestDatabase.create(); HikariDataSource ds = dataSource(db)) {
            Migrations.migrate(ds, location(db));
            assertSchemaComplete(db);
            List<List<String>> history = history(db);
            assertEquals(List.of(List.of("1", "SQL", "true"), List.of("2", "SQL", "true"),
                    List.of("3", "SQL", "true"), List.of("4", "SQL", "true")), history);

            assertDoesNotThrow(() -> Migrations.migrate(ds, location(db)));
            assertEquals(history, history(db), "a second run applies nothing");
            assertDoesNotThrow(() -> Migrations.requireCurrent(ds, location(db)));

            try (PostgresStorage first = PostgresStorage.open(settings(db.url(), true));
                 PostgresStorage second = PostgresStorage.open(settings(db.url(), true))) {
                assertTrue(first.healthy());
                assertTrue(second.healthy());
            }
            try (PostgresStorage checking = PostgresStorage.open(settings(db.url(), false))) {
                assertTrue(checking.healthy());
            }
            assertEquals(history, history(db));
            assertSchemaComplete(db);
        }
    }

    // ---- (2) a database the TS server created ---------------------------------------------------------

    @Test
    void instancesStartingTogetherOnAnEmptyDatabaseAllMigrate() throws Exception {
        // CI caught this: without a lock around the whole migration, one instance created Flyway's history
        // table and the next found it empty and refused to baseline it.
        try (TestDatabase db = TestDatabase.create()) {
            int instances = 6;
            java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(instances);
            List<java.util.concurrent.Future<?>> runs = new ArrayList<>();
            try (var pool = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
                for (int i = 0; i < instances; i++) {
                    runs.add(pool.submit(() -> {
                        start.await();
                        try (PostgresStorage storage = PostgresStorage.open(settings(db.url(), true))) {
                            return storage;
                        }
                    }));
                }
                for (var run : runs) {
                    assertDoesNotThrow(() -> run.get());
                }
            }
            assertSchemaComplete(db);
            assertEquals(List.of(List.of("1", "SQL", "true"), List.of("2", "SQL", "true"),
                    List.of("3", "SQL", "true"), List.of("4", "SQL", "true")), history(db));
        }
    }

    @Test
    void adoptsADatabaseCreatedByTheTsServer() throws Exception {
        try (TestDatabase db = TestDatabase.create()) {
            String schema = fixture();
            exec(db, schema);
            exec(db, schema); // the TS server re-runs it on every start

            // Data as the TS server writes it: saveDocument upserts (twice: version 2), updateVectorClock,
            // saveDelta without a seq (and with value NULL for a delete).
            String upsert = "INSERT INTO documents (id, state) VALUES ('doc-ts', '{\"id\":\"doc-ts\",\"fields\":{\"title\":\"from TS\",\"n\":0}}')"
                    + " ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, updated_at = NOW()";
            exec(db, upsert);
            exec(db, upsert);
            exec(db, "INSERT INTO vector_clocks (document_id, client_id, clock_value) VALUES ('doc-ts', 'client-a', 3),"
                    + " ('doc-ts', 'client-b', 1) ON CONFLICT (document_id, client_id) DO UPDATE SET clock_value = EXCLUDED.clock_value");
            exec(db, "INSERT INTO deltas (document_id, client_id, operation_type, field_path, value, clock_value)"
                    + " VALUES ('doc-ts', 'client-a', 'set', 'title', '\"from TS\"', 3),"
                    + " ('doc-ts', 'client-b', 'delete', 'gone', NULL, 1)");
            exec(db, "INSERT INTO sessions (id, user_id, client_id) VALUES ('sess-1', 'user-1', 'client-a')");
            assertEquals("2", one(db, "SELECT version FROM documents WHERE id = 'doc-ts'"));

            try (HikariDataSource ds = dataSource(db)) {
                // Not current before migrating: V1 and V2 are pending on a TS database.
                StorageException notCurrent = assertThrows(StorageException.class, () -> Migrations.requireCurrent(ds, location(db)));
                assertTrue(notCurrent.getMessage().contains("migrate"), notCurrent.getMessage());

                Migrations.migrate(ds, location(db));
                List<List<String>> history = history(db);
                assertEquals(List.of(List.of("0", "BASELINE", "true"), List.of("1", "SQL", "true"), List.of("2", "SQL", "true"),
                    List.of("3", "SQL", "true"), List.of("4", "SQL", "true")),
                        history);
                Migrations.migrate(ds, location(db));
                assertEquals(history, history(db));
                Migrations.requireCurrent(ds, location(db));
            }
            assertSchemaComplete(db);

            // The data is intact, and migrating did not count as an update.
            assertEquals(json("{\"id\":\"doc-ts\",\"fields\":{\"title\":\"from TS\",\"n\":0}}"),
                    json(one(db, "SELECT state::text FROM documents WHERE id = 'doc-ts'")));
            assertEquals("2", one(db, "SELECT version FROM documents WHERE id = 'doc-ts'"));
            assertEquals("0", one(db, "SELECT seq FROM documents WHERE id = 'doc-ts'"));
            assertEquals("2", one(db, "SELECT COUNT(*) FROM vector_clocks WHERE document_id = 'doc-ts'"));
            assertEquals("2", one(db, "SELECT COUNT(*) FROM deltas WHERE document_id = 'doc-ts' AND seq IS NULL"));
            assertEquals("1", one(db, "SELECT COUNT(*) FROM sessions"));

            try (PostgresStorage store = PostgresStorage.open(settings(db.url(), true))) {
                StoredDocument doc = store.load("doc-ts").orElseThrow();
                assertEquals(Map.of("title", json("\"from TS\""), "n", json("0")), doc.fields());
                assertEquals(Map.of("client-a", 3L, "client-b", 1L), doc.clock());
                assertEquals(0, doc.seq());
                assertNull(doc.text());
                assertEquals(0, store.currentSeq("doc-ts"));
                assertEquals(List.of("doc-ts"), store.list("", null, 10).stream().map(DocumentSummary::id).toList());

                long ts = System.currentTimeMillis();
                CommitResult r = store.commit(new DocumentWrite("doc-ts", 0,
                        List.of(new StoredDelta(1, "n", json("1"), "java-1", ts), new StoredDelta(2, "done", json("false"), "java-1", ts)),
                        Map.of("client-a", 3L, "client-b", 1L, "java-1", 1L), null, ts, "java-1", "m-1"),
                        current -> {
                            throw new AssertionError("the TS document has seq 0: no rebase expected, got " + current);
                        });
                assertInstanceOf(CommitResult.Applied.class, r);

                // Still the TS shape, readable by the TS server.
                assertEquals(json("{\"id\":\"doc-ts\",\"fields\":{\"title\":\"from TS\",\"n\":1,\"done\":false}}"),
                        json(one(db, "SELECT state::text FROM documents WHERE id = 'doc-ts'")));
                assertEquals("3", one(db, "SELECT version FROM documents WHERE id = 'doc-ts'"), "the version trigger still fires");
                assertEquals("1", one(db, "SELECT COUNT(*) FROM documents WHERE id = 'doc-ts'"
                        + " AND updated_at > created_at"));
                assertEquals("2", one(db, "SELECT COUNT(*) FROM deltas WHERE document_id = 'doc-ts' AND seq IS NULL"),
                        "the TS rows without seq survive");
                assertEquals("2", one(db, "SELECT COUNT(*) FROM deltas WHERE document_id = 'doc-ts' AND seq IS NOT NULL"));
                assertEquals(json("{\"client-a\":3,\"client-b\":1,\"java-1\":1}"),
                        json(one(db, "SELECT vector_clock::text FROM documents_with_clocks WHERE id = 'doc-ts'")));
                // Our delta rows are in the TS row format as well.
                assertEquals(List.of(List.of("java-1", "set", "n", "1"), List.of("java-1", "set", "done", "false")),
                        rows(db, "SELECT client_id, operation_type, field_path, value::text FROM deltas"
                                + " WHERE document_id = 'doc-ts' AND seq IS NOT NULL ORDER BY seq"));

                StoredDocument after = store.load("doc-ts").orElseThrow();
                assertEquals(Map.of("title", json("\"from TS\""), "n", json("1"), "done", json("false")), after.fields());
                assertEquals(2, after.seq());
                assertEquals(List.of("1", "2"), rows(db, "SELECT seq FROM deltas WHERE document_id = 'doc-ts' AND seq IS NOT NULL ORDER BY seq")
                        .stream().map(List::getFirst).toList());

                // A TS server restarting re-runs its schema over ours: no error, and nothing of ours is lost.
                exec(db, schema);
                assertSchemaComplete(db);
                assertEquals(after.fields(), store.load("doc-ts").orElseThrow().fields());
                // And it can keep writing the way it does; we read what it wrote.
                exec(db, "INSERT INTO documents (id, state) VALUES ('doc-ts', '{\"id\":\"doc-ts\",\"fields\":{\"title\":\"TS again\",\"n\":1,\"done\":false}}')"
                        + " ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, updated_at = NOW()");
                exec(db, "INSERT INTO documents (id, state) VALUES ('doc-ts2', '{\"id\":\"doc-ts2\",\"fields\":{\"x\":null}}')");
                assertEquals(json("\"TS again\""), store.load("doc-ts").orElseThrow().fields().get("title"));
                assertEquals(2, store.currentSeq("doc-ts"));
                assertEquals(Map.of("x", json("null")), store.load("doc-ts2").orElseThrow().fields());
                assertEquals("4", one(db, "SELECT version FROM documents WHERE id = 'doc-ts'"));
            }
            try (HikariDataSource ds = dataSource(db)) {
                Migrations.requireCurrent(ds, location(db));
            }
        }
    }

    // ---- (3) requireCurrent -----------------------------------------------------------------------------

    @Test
    void requireCurrentFailsUntilMigrated() throws Exception {
        try (TestDatabase db = TestDatabase.create(); HikariDataSource ds = dataSource(db)) {
            StorageException e = assertThrows(StorageException.class, () -> Migrations.requireCurrent(ds, location(db)));
            assertTrue(e.getMessage().contains("migrate"), e.getMessage());
            assertTrue(e.getMessage().contains("127.0.0.1"), "names the database: " + e.getMessage());

            StorageException onOpen = assertThrows(StorageException.class, () -> PostgresStorage.open(settings(db.url(), false)));
            assertTrue(onOpen.getMessage().contains("migrate"), onOpen.getMessage());
            assertEquals("0", one(db, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"),
                    "checking does not create anything");

            Migrations.migrate(ds, location(db));
            assertDoesNotThrow(() -> Migrations.requireCurrent(ds, location(db)));
            try (PostgresStorage store = PostgresStorage.open(settings(db.url(), false))) {
                assertTrue(store.healthy());
            }
        }
    }

    // ---- (4) database locations ----------------------------------------------------------------------

    @Test
    void parsesTsStyleUrls() {
        DatabaseUrl u = DatabaseUrl.parse("postgresql://u:p%40ss@h:5433/db", null, null);
        assertEquals("jdbc:postgresql://h:5433/db", u.jdbcUrl());
        assertEquals("u", u.user());
        assertEquals("p@ss", u.password());

        DatabaseUrl scheme = DatabaseUrl.parse("postgres://user@db.example.com/app?sslmode=require", null, "fromSettings");
        assertEquals("jdbc:postgresql://db.example.com:5432/app?sslmode=require", scheme.jdbcUrl());
        assertEquals("user", scheme.user());
        assertEquals("fromSettings", scheme.password(), "a password only in the settings is kept");

        DatabaseUrl noDb = DatabaseUrl.parse("  postgresql://localhost  ", "s-user", "s-pass");
        assertEquals("jdbc:postgresql://localhost:5432/postgres", noDb.jdbcUrl());
        assertEquals("s-user", noDb.user());
        assertEquals("s-pass", noDb.password());

        DatabaseUrl plus = DatabaseUrl.parse("postgresql://u:a+b%2Bc%3A%2F@h/db", null, null);
        assertEquals("a+b+c:/", plus.password(), "+ in the user info is a plus, not a space");
    }

    @Test
    void passesJdbcUrlsThrough() {
        DatabaseUrl u = DatabaseUrl.parse("jdbc:postgresql://h:5432/db?ssl=true", "u", "pw");
        assertEquals("jdbc:postgresql://h:5432/db?ssl=true", u.jdbcUrl());
        assertEquals("u", u.user());
        assertEquals("pw", u.password());

        DatabaseUrl empty = DatabaseUrl.parse("jdbc:postgresql://h/db?user=x", "", "");
        assertNull(empty.user());
        assertNull(empty.password());
    }

    @Test
    void parsesNpgsqlConnectionStrings() {
        DatabaseUrl u = DatabaseUrl.parse("Host=h;Port=5434;Database=d;Username=u;Password=x", null, null);
        assertEquals("jdbc:postgresql://h:5434/d", u.jdbcUrl());
        assertEquals("u", u.user());
        assertEquals("x", u.password());

        DatabaseUrl spaced = DatabaseUrl.parse("Server=h2; User ID=u2; Password=y;Database=d2;", null, null);
        assertEquals("jdbc:postgresql://h2:5432/d2", spaced.jdbcUrl());
        assertEquals("u2", spaced.user());
        assertEquals("y", spaced.password());
    }

    @Test
    void maskedNeverShowsThePassword() {
        for (DatabaseUrl u : List.of(
                DatabaseUrl.parse("postgresql://u:s3cr3t-pw@h:5433/db", null, null),
                DatabaseUrl.parse("Host=h;Database=d;Username=u;Password=s3cr3t-pw", null, null),
                DatabaseUrl.parse("jdbc:postgresql://h/db", "u", "s3cr3t-pw"),
                DatabaseUrl.parse("jdbc:postgresql://h/db?user=u&password=s3cr3t-pw&ssl=true", null, null),
                DatabaseUrl.parse("jdbc:postgresql://h/db?PASSWORD=s3cr3t-pw", null, null))) {
            assertFalse(u.masked().contains("s3cr3t"), u.masked());
            assertFalse(u.toString().isEmpty());
        }
        assertTrue(DatabaseUrl.parse("postgresql://u:s3cr3t-pw@h:5433/db", null, null).masked().contains("h:5433/db"));
    }

    @Test
    void rejectsGarbage() {
        for (String garbage : List.of("", "   ", "not a url", "mysql://u:p@h/db", "http://h/db", "postgresql://[broken")) {
            assertThrows(IllegalArgumentException.class, () -> DatabaseUrl.parse(garbage, null, null), garbage);
        }
    }

    // ---- (5) unreachable database --------------------------------------------------------------------

    @Test
    void unreachableDatabaseFailsFastAndSaysWhere() {
        String url = "jdbc:postgresql://127.0.0.1:1/x?password=hunter2-secret";
        Settings.Storage s = new Settings.Storage("postgres", url, "someone", "other-secret", 2, Duration.ofSeconds(1),
                true, 1, 1, Duration.ZERO, Duration.ofDays(30), Duration.ofHours(24),
                Duration.ofSeconds(5), Duration.ofSeconds(2), 1000, 200);
        long start = System.nanoTime();
        StorageException e = assertThrows(StorageException.class, () -> PostgresStorage.open(s));
        long millis = (System.nanoTime() - start) / 1_000_000;
        assertTrue(millis < 5_000, "failed after " + millis + " ms");
        assertTrue(e.getMessage().contains("127.0.0.1:1/x"), e.getMessage());
        assertFalse(e.getMessage().contains("hunter2"), e.getMessage());
        assertFalse(e.getMessage().contains("other-secret"), e.getMessage());
    }

    @Test
    void theMigrateSubcommandMigratesAnEmptyDatabaseAndExits() throws Exception {
        // What the Kubernetes migrate job runs, in a process of its own.
        try (TestDatabase db = TestDatabase.create()) {
            ProcessBuilder pb = new ProcessBuilder(java.nio.file.Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-cp", System.getProperty("java.class.path"), "dev.synckit.server.Main", "migrate")
                    .redirectErrorStream(true);
            pb.environment().put("DATABASE_URL", db.url());
            pb.environment().put("SYNCKIT_AUTH_REQUIRED", "false");
            Process p = pb.start();
            String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS), output);
            assertEquals(0, p.exitValue(), output);
            try (Connection c = db.connect(); Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("SELECT count(*) FROM flyway_schema_history WHERE success")) {
                rs.next();
                assertTrue(rs.getInt(1) >= 2, "migrations recorded");
            }
        }
    }
}
