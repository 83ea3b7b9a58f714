package dev.synckit.server.storage;

import dev.synckit.server.config.Settings;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.testing.TcpProxy;
import dev.synckit.server.testing.TestDatabase;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.sql.Connection;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A database that makes writers wait (a row lock held by a stuck session, a server that stops answering)
 * turns into errors within the configured bounds, and the committer goes on with other documents. The
 * bounds checked are generous: the behaviour under test is "well under the 10 s the old socket floor gave".
 */
class DatabaseWaitsTest {

    private static Settings.Storage settings(String url, Duration socketTimeout, Duration lockTimeout) {
        // One committer: every document shares it, so a stalled document would stall the others.
        return new Settings.Storage("postgres", url, "", "", 4, Duration.ofSeconds(2), true, 64, 1,
                Duration.ZERO, Duration.ofDays(30), Duration.ofHours(24), socketTimeout, lockTimeout, 1000, 200);
    }

    private static DocumentWrite write(String doc, long baseSeq, Object value) {
        long now = System.currentTimeMillis();
        return new DocumentWrite(doc, baseSeq, List.of(new StoredDelta(baseSeq + 1, "v", Json.MAPPER.valueToTree(value),
                "conn-1", now)), Map.of("server", baseSeq + 1), null, now, null, null);
    }

    private record Outcome(CommitResult result, StorageException error, long millis) {}

    private static CompletableFuture<Outcome> submit(StorageAdapter store, DocumentWrite w) {
        CompletableFuture<Outcome> f = new CompletableFuture<>();
        long start = System.nanoTime();
        store.submit(w, current -> {
            long seq = current.seq();
            return new DocumentWrite(w.documentId(), seq, List.of(new StoredDelta(seq + 1, "v", w.deltas().getFirst().value(),
                    "conn-1", w.timestamp())), Map.of("server", seq + 1), null, w.timestamp(), null, null);
        }, (r, e) -> f.complete(new Outcome(r, e, (System.nanoTime() - start) / 1_000_000)));
        return f;
    }

    @Test
    void writesToALockedDocumentFailAtTheLockTimeoutWhileOtherDocumentsCommit() throws Exception {
        try (TestDatabase db = TestDatabase.create();
             PostgresStorage store = PostgresStorage.open(settings(db.url(), Duration.ofSeconds(5), Duration.ofMillis(500)))) {
            assertInstanceOf(CommitResult.Applied.class, submit(store, write("locked", 0, "before")).get(10, TimeUnit.SECONDS).result());
            try (Connection stuck = db.connect(); Statement st = stuck.createStatement()) {
                // Another instance stuck in the middle of its write transaction.
                stuck.setAutoCommit(false);
                st.execute("SELECT * FROM documents WHERE id = 'locked' FOR UPDATE");

                List<CompletableFuture<Outcome>> locked = new ArrayList<>();
                for (int i = 0; i < 5; i++) {
                    locked.add(submit(store, write("locked", 1 + i, "during-" + i)));
                }
                CompletableFuture<Outcome> free = submit(store, write("free", 0, "x"));

                Outcome freeOutcome = free.get(30, TimeUnit.SECONDS);
                System.out.println("locked row: the other document committed after " + freeOutcome.millis() + " ms");
                assertNull(freeOutcome.error(), () -> "the other document's write failed: " + freeOutcome.error());
                assertInstanceOf(CommitResult.Applied.class, freeOutcome.result());
                // Each write to the locked row waiting out the lock in turn would take 5 × 0.5 s before it.
                assertTrue(freeOutcome.millis() < 2_500, "the other document waited " + freeOutcome.millis() + " ms");
                for (CompletableFuture<Outcome> f : locked) {
                    Outcome o = f.get(20, TimeUnit.SECONDS);
                    assertNotNull(o.error(), "a write to the locked document went through: " + o.result());
                    assertTrue(o.error().getMessage().contains("lock timeout"), o.error().getMessage());
                    assertTrue(o.millis() < 5_000, "a write to the locked document waited " + o.millis() + " ms");
                }
                stuck.rollback();
            }
            // The lock is gone: the document takes writes again, and nothing of the failed ones was stored.
            assertInstanceOf(CommitResult.Applied.class, submit(store, write("locked", 1, "after")).get(10, TimeUnit.SECONDS).result());
            StoredDocument doc = store.load("locked").orElseThrow();
            assertEquals("after", doc.fields().get("v").asText());
            assertEquals(2, doc.seq());
        }
    }

    @Test
    void aDatabaseThatStopsAnsweringFailsTheWriteWithinTheSocketTimeout() throws Exception {
        try (TestDatabase db = TestDatabase.create()) {
            URI address = db.address();
            try (TcpProxy proxy = new TcpProxy(address.getHost(), address.getPort());
                 PostgresStorage store = PostgresStorage.open(settings(db.urlVia(proxy.port()), Duration.ofMillis(1000),
                         Duration.ofMillis(500)))) {
                assertInstanceOf(CommitResult.Applied.class, submit(store, write("d", 0, "before")).get(10, TimeUnit.SECONDS).result());

                proxy.pause();
                Outcome hung = submit(store, write("d", 1, "during")).get(30, TimeUnit.SECONDS);
                System.out.println("silent database: the write failed after " + hung.millis() + " ms");
                assertNotNull(hung.error(), "a write went through a frozen database: " + hung.result());
                // 1 s: the socket timeout is 2 s (rounded up, plus one), a pooled connection's check 1 s; before,
                // the socket timeout had a 10 s floor and the check took 5 s.
                assertTrue(hung.millis() < 4_000, "the write waited " + hung.millis() + " ms for a silent database");

                proxy.resume();
                Outcome after = null;
                for (int i = 0; i < 20 && (after == null || after.error() != null); i++) {
                    after = submit(store, write("d", 1, "after")).get(30, TimeUnit.SECONDS);
                }
                assertNull(after.error(), () -> "no write succeeded after the database answered again");
            }
        }
    }
}
