package dev.synckit.server.storage;

import dev.synckit.server.config.Settings;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.testing.TestDatabase;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Concurrent writes share transactions, and a failing write does not take its batch down with it. */
class GroupCommitTest {
    static Settings.Storage settings(String url, int maxBatch) {
        return new Settings.Storage("postgres", url, "", "", 8, Duration.ofSeconds(5), true, maxBatch, 4,
                Duration.ZERO, Duration.ofDays(30), Duration.ofHours(24),
                Duration.ofSeconds(5), Duration.ofSeconds(2), 1000, 200);
    }

    private static DocumentWrite write(String doc, long baseSeq, String field, Object value) {
        return new DocumentWrite(doc, baseSeq, List.of(new StoredDelta(baseSeq + 1, field, Json.MAPPER.valueToTree(value),
                "conn-1", System.currentTimeMillis())), Map.of("server", baseSeq + 1), null, System.currentTimeMillis(), null, null);
    }

    /**
     * A write based on the stored sequence is locked, checked and stored by one statement; a write whose base
     * is stale or whose message id was applied takes the long way and is rebased or answered as a duplicate,
     * with nothing of the checked statement stored.
     */
    @Test
    void currentWritesTakeOneStatementAndTheOthersTheLongWay() throws Exception {
        try (TestDatabase db = TestDatabase.create(); PostgresStorage storage = PostgresStorage.open(settings(db.url(), 64))) {
            assertInstanceOf(CommitResult.Applied.class, storage.commit(write("one", 0, "n", 0), c -> {
                throw new AssertionError("nothing to rebase onto");
            })); // creates the row: the long way
            long before = storage.oneStatementRuns();
            for (int i = 1; i <= 5; i++) {
                assertInstanceOf(CommitResult.Applied.class, storage.commit(write("one", i, "n", i), c -> {
                    throw new AssertionError("the base was current");
                }));
            }
            assertEquals(before + 5, storage.oneStatementRuns());

            CommitResult stale = storage.commit(write("one", 2, "m", "late"), current -> write("one", current.seq(), "m", "late"));
            assertInstanceOf(CommitResult.Applied.class, stale);
            assertTrue(((CommitResult.Applied) stale).rebasedOnto() != null, "a stale base must be rebased");
            assertEquals(before + 5, storage.oneStatementRuns());
            StoredDocument stored = storage.load("one").orElseThrow();
            assertEquals(7, stored.seq());
            assertEquals(Json.MAPPER.valueToTree(5), stored.fields().get("n"));
            assertEquals(Json.MAPPER.valueToTree("late"), stored.fields().get("m"));

            DocumentWrite withId = new DocumentWrite("one", 7, List.of(new StoredDelta(8, "k", Json.MAPPER.valueToTree(1),
                    "conn-1", 1L)), Map.of("server", 8L), null, 1L, "client", "msg-1");
            assertInstanceOf(CommitResult.Applied.class, storage.commit(withId, c -> withId));
            DocumentWrite again = new DocumentWrite("one", 8, List.of(new StoredDelta(9, "k", Json.MAPPER.valueToTree(2),
                    "conn-1", 1L)), Map.of("server", 9L), null, 1L, "client", "msg-1");
            assertEquals(CommitResult.DUPLICATE, storage.commit(again, c -> again));
            assertEquals(8, storage.load("one").orElseThrow().seq(), "the duplicate stored nothing");
            assertEquals(Json.MAPPER.valueToTree(1), storage.load("one").orElseThrow().fields().get("k"));
        }
    }

    @Test
    void concurrentWritesAreCommittedInFewerTransactions() throws Exception {
        int writers = 32;
        int each = 20;
        try (TestDatabase db = TestDatabase.create(); PostgresStorage storage = PostgresStorage.open(settings(db.url(), 64))) {
            CountDownLatch start = new CountDownLatch(1);
            ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
            List<Thread> threads = new ArrayList<>();
            for (int w = 0; w < writers; w++) {
                String doc = "gc-" + w;
                threads.add(Thread.ofVirtual().start(() -> {
                    try {
                        start.await();
                        for (int i = 0; i < each; i++) {
                            long base = i;
                            CommitResult r = storage.commit(write(doc, base, "n", i), current -> {
                                throw new AssertionError("nobody else writes " + doc);
                            });
                            assertInstanceOf(CommitResult.Applied.class, r);
                        }
                    } catch (Throwable t) {
                        failures.add(t);
                    }
                }));
            }
            start.countDown();
            for (Thread t : threads) {
                t.join();
            }
            assertTrue(failures.isEmpty(), () -> "writes failed: " + failures);
            for (int w = 0; w < writers; w++) {
                StoredDocument d = storage.load("gc-" + w).orElseThrow();
                assertEquals(each, d.seq());
                assertEquals(each - 1, d.fields().get("n").asInt());
            }
            long transactions = storage.transactions();
            System.out.println("group commit: " + writers * each + " writes in " + transactions + " transactions");
            assertTrue(transactions < writers * each, "no write shared a transaction: " + transactions);
        }
    }

    @Test
    void aFailingWriteFailsAloneAndTheRestOfItsBatchCommits() throws Exception {
        String tooLong = "x".repeat(300); // vector_clocks.client_id is VARCHAR(255)
        try (TestDatabase db = TestDatabase.create(); PostgresStorage storage = PostgresStorage.open(settings(db.url(), 64))) {
            CountDownLatch start = new CountDownLatch(1);
            ConcurrentLinkedQueue<String> unexpected = new ConcurrentLinkedQueue<>();
            List<Thread> threads = new ArrayList<>();
            for (int w = 0; w < 40; w++) {
                String doc = "iso-" + w;
                boolean bad = w % 8 == 0;
                threads.add(Thread.ofVirtual().start(() -> {
                    try {
                        start.await();
                        DocumentWrite ok = write(doc, 0, "ok", doc);
                        DocumentWrite attempt = bad ? new DocumentWrite(doc, 0, ok.deltas(), Map.of(tooLong, 1L), null,
                                ok.timestamp(), null, null) : ok;
                        storage.commit(attempt, c -> {
                            throw new AssertionError("no rebase expected");
                        });
                        if (bad) {
                            unexpected.add(doc + " was accepted");
                        }
                    } catch (StorageException e) {
                        if (!bad) {
                            unexpected.add(doc + " failed: " + e.getMessage());
                        }
                    } catch (Throwable t) {
                        unexpected.add(doc + ": " + t);
                    }
                }));
            }
            start.countDown();
            for (Thread t : threads) {
                t.join();
            }
            assertTrue(unexpected.isEmpty(), () -> String.join("\n", unexpected));
            for (int w = 0; w < 40; w++) {
                var stored = storage.load("iso-" + w);
                if (w % 8 == 0) {
                    assertEquals(0, stored.map(StoredDocument::seq).orElse(0L), "a failed write left traces");
                } else {
                    assertEquals("iso-" + w, stored.orElseThrow().fields().get("ok").asText());
                }
            }
        }
    }
    private static DocumentWrite write(String doc, long baseSeq, String field, Object value, String clientId, String messageId) {
        DocumentWrite w = write(doc, baseSeq, field, value);
        return new DocumentWrite(w.documentId(), w.baseSeq(), w.deltas(), w.clock(), w.text(), w.timestamp(), clientId, messageId);
    }

    @Test
    void writesPipelinedOnOneDocumentCommitInOrderAndRebaseAfterADuplicate() throws Exception {
        try (TestDatabase db = TestDatabase.create(); PostgresStorage storage = PostgresStorage.open(settings(db.url(), 64))) {
            assertInstanceOf(CommitResult.Applied.class, storage.commit(write("pipe", 0, "f0", 0, "c", "m-0"), c -> {
                throw new AssertionError("no rebase expected");
            }));
            int n = 200;
            int duplicateAt = 50; // a retry of m-0: not stored, so every later write was computed on a base one too high
            List<Object> outcomes = java.util.Collections.synchronizedList(new ArrayList<>());
            CountDownLatch done = new CountDownLatch(n);
            for (int i = 1; i <= n; i++) {
                int k = i;
                String messageId = i == duplicateAt ? "m-0" : "m-" + i;
                storage.submit(write("pipe", i - 1, "f" + (i % 7), i, "c", messageId), current ->
                        write("pipe", current.seq(), "f" + (k % 7), k, "c", messageId), (r, e) -> {
                    outcomes.add(e != null ? e : r);
                    done.countDown();
                });
            }
            assertTrue(done.await(30, java.util.concurrent.TimeUnit.SECONDS), "not every write finished");
            assertEquals(n, outcomes.size());
            long applied = outcomes.stream().filter(o -> o instanceof CommitResult.Applied).count();
            assertEquals(n - 1, applied, () -> "outcomes: " + outcomes);
            assertEquals(1, outcomes.stream().filter(o -> o instanceof CommitResult.Duplicate).count());
            // Outcomes arrive in submission order, each write directly after the one before it.
            long expected = 1;
            for (Object o : outcomes) {
                if (o instanceof CommitResult.Applied a) {
                    assertEquals(expected, a.write().baseSeq(), "applied out of order");
                    expected = a.write().lastSeq();
                }
            }
            StoredDocument d = storage.load("pipe").orElseThrow();
            assertEquals(n, d.seq());
            assertEquals(n, d.fields().get("f" + (n % 7)).asInt());
            assertTrue(storage.transactions() < n, "pipelined writes did not share transactions: " + storage.transactions());
        }
    }
    @Test
    void aMessageIdAppliedByAnotherWriterWhileWeWaitedForTheLockIsADuplicate() throws Exception {
        // The id lookup must see what the writer we waited for committed, or the retry is applied twice.
        try (TestDatabase db = TestDatabase.create(); PostgresStorage storage = PostgresStorage.open(settings(db.url(), 64))) {
            storage.commit(write("race", 0, "n", 0, "c", "m-0"), c -> {
                throw new AssertionError("no rebase expected");
            });
            try (java.sql.Connection other = db.connect()) {
                // Another instance holds the row and applies m-1 ...
                other.setAutoCommit(false);
                try (java.sql.Statement st = other.createStatement()) {
                    st.execute("SELECT seq FROM documents WHERE id = 'race' FOR UPDATE");
                    st.execute("INSERT INTO synckit_applied_messages (document_id, client_id, message_id, seq) VALUES ('race', 'c', 'm-1', 2)");
                    st.execute("UPDATE documents SET seq = 2 WHERE id = 'race'");
                }
                // ... while our write of the same message waits for the lock.
                CountDownLatch done = new CountDownLatch(1);
                Object[] outcome = new Object[1];
                storage.submit(write("race", 1, "n", 1, "c", "m-1"), current -> write("race", current.seq(), "n", 1, "c", "m-1"),
                        (r, e) -> {
                            outcome[0] = e != null ? e : r;
                            done.countDown();
                        });
                Thread.sleep(300);
                assertEquals(1, done.getCount(), "the write did not wait for the row lock");
                other.commit();
                assertTrue(done.await(10, java.util.concurrent.TimeUnit.SECONDS));
                assertInstanceOf(CommitResult.Duplicate.class, outcome[0], () -> "outcome: " + outcome[0]);
            }
            assertEquals(2, storage.load("race").orElseThrow().seq(), "applied twice");
        }
    }
}
