package dev.synckit.server.storage;

import dev.synckit.server.testing.TestDatabase;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static dev.synckit.server.storage.StorageContractTest.json;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Two owners of one document, each with the epoch its claim returned, cannot both commit: once the second
 * has claimed, every write carrying the first one's epoch is refused and stores nothing, including writes
 * the first owner had already queued before the claim (a paused owner waking up). Run on both stores.
 */
class FencingTest {

    abstract static class Fencing {
        StorageAdapter store;

        abstract StorageAdapter open() throws Exception;

        void dispose() {
        }

        @BeforeEach
        void openStore() throws Exception {
            store = open();
        }

        @AfterEach
        void closeStore() {
            store.close();
            dispose();
        }

        static DocumentWrite write(String doc, long baseSeq, String field, String value, long fence, String messageId) {
            long now = System.currentTimeMillis();
            return new DocumentWrite(doc, baseSeq, List.of(new StoredDelta(baseSeq + 1, field, json(value), "w", now)),
                    Map.of("c", baseSeq + 1), null, now, "client", messageId, fence);
        }

        /** Rebases like the sync core: same change on top of whatever is stored. */
        static StorageAdapter.Rebase onto(String field, String value, long fence, String messageId) {
            return current -> write(current.id(), current.seq(), field, value, fence, messageId);
        }

        @Test
        void aFormerOwnersWritesAreRefusedOnceAnotherOwnerClaimed() throws Exception {
            long a = store.claim("doc");
            CommitResult first = store.commit(write("doc", 0, "f", "\"a1\"", a, "m1"), onto("f", "\"a1\"", a, "m1"));
            assertInstanceOf(CommitResult.Applied.class, first);

            long b = store.claim("doc");
            assertTrue(b > a, "a claim must raise the epoch: " + a + " then " + b);

            long fencedBefore = dev.synckit.server.meters.Meters.fencedCommits();
            CommitResult late = store.commit(write("doc", 1, "f", "\"a2\"", a, "m2"), onto("f", "\"a2\"", a, "m2"));
            assertEquals(new CommitResult.Fenced(a, b), late);
            assertEquals(fencedBefore + 1, dev.synckit.server.meters.Meters.fencedCommits());
            assertEquals(json("\"a1\""), store.load("doc").orElseThrow().fields().get("f"), "the refused write stored nothing");
            assertEquals(1, store.currentSeq("doc"));

            CommitResult owner = store.commit(write("doc", 1, "f", "\"b1\"", b, "m3"), onto("f", "\"b1\"", b, "m3"));
            assertInstanceOf(CommitResult.Applied.class, owner);
            assertEquals(json("\"b1\""), store.load("doc").orElseThrow().fields().get("f"));

            // The refused message id was not recorded: the new owner may still apply it (a forwarded retry).
            CommitResult retried = store.commit(write("doc", 2, "f", "\"a2\"", b, "m2"), onto("f", "\"a2\"", b, "m2"));
            assertInstanceOf(CommitResult.Applied.class, retried);
            assertEquals(json("\"a2\""), store.load("doc").orElseThrow().fields().get("f"));
        }

        @Test
        void writesQueuedByTheOldOwnerBeforeTheClaimAreRefusedAfterIt() throws Exception {
            long a = store.claim("doc");
            long b = store.claim("doc"); // the new owner claimed while the old one still had writes to send
            int n = 20;
            CountDownLatch done = new CountDownLatch(n);
            List<CommitResult> results = java.util.Collections.synchronizedList(new ArrayList<>());
            for (int i = 0; i < n; i++) {
                long fence = i % 2 == 0 ? a : b;
                String value = "\"" + (fence == a ? "old" : "new") + i + "\"";
                store.submit(write("doc", i, "f" + i, value, fence, "m" + i), onto("f" + i, value, fence, "m" + i), (r, e) -> {
                    results.add(r);
                    done.countDown();
                });
            }
            assertTrue(done.await(10, TimeUnit.SECONDS));
            StoredDocument stored = store.load("doc").orElseThrow();
            for (int i = 0; i < n; i++) {
                if (i % 2 == 0) {
                    assertTrue(!stored.fields().containsKey("f" + i), "old owner's write " + i + " was stored: " + stored.fields());
                } else {
                    assertEquals(json("\"new" + i + "\""), stored.fields().get("f" + i));
                }
            }
            assertEquals(n / 2, results.stream().filter(r -> r instanceof CommitResult.Fenced).count());
            assertEquals(n / 2, stored.seq(), "only the owner's writes advanced the sequence");
        }

        @Test
        void unfencedWritesStillCommitAndEpochsSurviveADelete() throws Exception {
            long a = store.claim("doc");
            assertInstanceOf(CommitResult.Applied.class, store.commit(write("doc", 0, "f", "1", 0, null), onto("f", "1", 0, null)));
            store.delete("doc");
            long b = store.claim("doc");
            assertTrue(b > a, "deleting a document must not make an old epoch current again");
            assertInstanceOf(CommitResult.Fenced.class, store.commit(write("doc", 0, "f", "2", a, "x"), onto("f", "2", a, "x")));
        }
    }

    @Nested
    class Memory extends Fencing {
        @Override
        StorageAdapter open() {
            return new MemoryStorage(1000);
        }
    }

    @Nested
    class Postgres extends Fencing {
        private TestDatabase db;

        @Override
        StorageAdapter open() throws Exception {
            db = TestDatabase.create();
            // Group commit on, so writes of both owners share transactions and runs.
            return PostgresStorage.open(StorageContractTest.postgresSettings(db.url(), 16, 1));
        }

        /**
         * The claim commits while the former owner's commit waits for the document row: that commit's statement
         * began before the claim was visible, so an epoch read in its snapshot would still be the old one.
         */
        @Test
        void aCommitThatWaitedForAClaimsRowLockSeesTheClaimedEpoch() throws Exception {
            long a = store.claim("doc");
            assertInstanceOf(CommitResult.Applied.class, store.commit(write("doc", 0, "f", "\"a1\"", a, "m1"),
                    onto("f", "\"a1\"", a, "m1")));
            try (java.sql.Connection claimer = db.connect(); java.sql.Connection watcher = db.connect()) {
                claimer.setAutoCommit(false);
                try (var st = claimer.createStatement()) {
                    // What a claim by another instance does: the row lock first, then the epoch.
                    st.execute("SELECT 1 FROM documents WHERE id = 'doc' FOR UPDATE");
                    st.execute("UPDATE synckit_owner_epochs SET epoch = epoch + 1 WHERE document_id = 'doc'");
                }
                java.util.concurrent.CompletableFuture<CommitResult> late = new java.util.concurrent.CompletableFuture<>();
                store.submit(write("doc", 1, "f", "\"a2\"", a, "m2"), onto("f", "\"a2\"", a, "m2"), (r, e) -> {
                    if (e != null) {
                        late.completeExceptionally(e);
                    } else {
                        late.complete(r);
                    }
                });
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (!waitingForALock(watcher)) {
                    assertTrue(System.nanoTime() < deadline, "the commit never waited for the claim's row lock");
                    Thread.sleep(5);
                }
                claimer.commit();
                assertEquals(new CommitResult.Fenced(a, a + 1), late.get(10, TimeUnit.SECONDS));
            }
            assertEquals(json("\"a1\""), store.load("doc").orElseThrow().fields().get("f"), "the former owner's write was stored");
        }

        private static boolean waitingForALock(java.sql.Connection c) throws java.sql.SQLException {
            try (var st = c.createStatement(); var rs = st.executeQuery("SELECT count(*) FROM pg_stat_activity"
                    + " WHERE datname = current_database() AND wait_event_type = 'Lock'")) {
                rs.next();
                return rs.getInt(1) > 0;
            }
        }

        @Override
        void dispose() {
            if (db != null) {
                db.close();
            }
        }
    }
}
