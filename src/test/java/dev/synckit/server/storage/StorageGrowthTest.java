package dev.synckit.server.storage;

import dev.synckit.server.protocol.Json;
import dev.synckit.server.testing.TestDatabase;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

/**
 * What writes leave behind in PostgreSQL: bounded per document except the applied message ids (which the
 * cleanup ages out). Prints the bytes per write quoted in ARCHITECTURE.md and BENCHMARKS.md.
 */
class StorageGrowthTest {
    private static final List<String> TABLES = List.of("documents", "vector_clocks", "deltas", "synckit_applied_messages");

    private static Map<String, Long> sizes(Connection c) throws SQLException {
        Map<String, Long> sizes = new LinkedHashMap<>();
        try (Statement st = c.createStatement()) {
            for (String t : TABLES) {
                try (ResultSet rs = st.executeQuery("SELECT pg_total_relation_size('" + t + "')")) {
                    rs.next();
                    sizes.put(t, rs.getLong(1));
                }
            }
        }
        return sizes;
    }

    @Test
    void whatAWriteStoresIsBoundedPerDocumentAndMeasured() throws Exception {
        int documents = 20;
        int perDocument = 300; // beyond the 200 delta rows a document keeps
        try (TestDatabase db = TestDatabase.create();
             PostgresStorage store = PostgresStorage.open(StorageContractTest.postgresSettings(db.url()));
             Connection sql = db.connect()) {
            for (int d = 0; d < documents; d++) {
                store.commit(write("growth-" + d, 0, "warm-up", Map.of("server", 1L), "warm-" + d), c -> {
                    throw new AssertionError();
                });
            }
            Map<String, Long> before = sizes(sql);
            for (int i = 1; i <= perDocument; i++) {
                for (int d = 0; d < documents; d++) {
                    // A new client each write, as on a document with many short-lived clients; the clock as
                    // the sync core leaves it (its own key and the server's).
                    Map<String, Long> clock = Map.of("server", (long) i + 1, "client-" + d + "-" + i, (long) i + 1);
                    assertInstanceOf(CommitResult.Applied.class, store.commit(write("growth-" + d, i, "value " + i,
                            clock, "m-" + d + "-" + i), c -> {
                        throw new AssertionError();
                    }));
                }
            }
            Map<String, Long> after = sizes(sql);
            int writes = documents * perDocument;
            StringBuilder report = new StringBuilder("bytes stored per write (" + writes + " one-field writes):");
            long total = 0;
            for (String t : TABLES) {
                long perWrite = (after.get(t) - before.get(t)) / writes;
                total += perWrite;
                report.append(' ').append(t).append('=').append(perWrite);
            }
            System.out.println(report.append(" total=").append(total).append(" (file growth incl. indexes and dead row versions)"));
            StringBuilder live = new StringBuilder("live row bytes per document after " + perDocument + " writes each:");
            for (String t : TABLES) {
                String key = t.equals("documents") ? "id" : "document_id";
                live.append(' ').append(t).append('=').append(scalar(sql, "SELECT COALESCE(SUM(pg_column_size(t.*) + 28), 0) / "
                        + documents + " FROM " + t + " t WHERE " + key + " LIKE 'growth-%'"));
            }
            System.out.println(live);
            // The regression: delta rows and clock rows per document stay bounded however many writes and clients.
            assertEquals(200, scalar(sql, "SELECT MAX(n) FROM (SELECT COUNT(*) n FROM deltas GROUP BY document_id) x"));
            assertEquals(2, scalar(sql, "SELECT MAX(n) FROM (SELECT COUNT(*) n FROM vector_clocks GROUP BY document_id) x"));
        }
    }

    private static long scalar(Connection c, String query) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(query)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private static DocumentWrite write(String doc, long baseSeq, String value, Map<String, Long> clock, String messageId) {
        long now = System.currentTimeMillis();
        return new DocumentWrite(doc, baseSeq, List.of(new StoredDelta(baseSeq + 1, "title", Json.MAPPER.valueToTree(value),
                "conn-1", now)), clock, null, now, "client-x", messageId);
    }
}
