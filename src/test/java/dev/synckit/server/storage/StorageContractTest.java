package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.NullNode;
import dev.synckit.server.config.Settings;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.testing.TestDatabase;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The {@link StorageAdapter} contract, run unchanged against every implementation: {@link Memory} and
 * {@link Postgres} inherit every test of {@link Contract}. (The implementations are {@code @Nested} so a
 * plain {@code mvn test} runs them through this class; surefire skips nested class files of its own accord.)
 */
class StorageContractTest {

    /** Settings for a PostgresStorage on a test database. */
    static Settings.Storage postgresSettings(String url) {
        return postgresSettings(url, 1, 1);
    }

    /** {@code maxBatch} 1 commits each write alone; above 1 writes share transactions (group commit). */
    static Settings.Storage postgresSettings(String url, int maxBatch, int committers) {
        return postgresSettings(url, maxBatch, committers, Duration.ofSeconds(2), 1000);
    }

    static Settings.Storage postgresSettings(String url, int maxBatch, int committers, Duration lockTimeout, int cleanupBatch) {
        return new Settings.Storage("postgres", url, "", "", 4, Duration.ofSeconds(5), true, maxBatch, committers,
                Duration.ZERO, Duration.ofDays(30), Duration.ofHours(24),
                Duration.ofSeconds(5), lockTimeout, cleanupBatch, 200);
    }

    static JsonNode json(String text) {
        try {
            return Json.MAPPER.readTree(text);
        } catch (IOException e) {
            throw new IllegalArgumentException(text, e);
        }
    }

    /** The contract tests; a subclass says how to open and close a fresh, empty store. */
    abstract static class Contract {
        protected StorageAdapter store;

        protected abstract StorageAdapter open() throws Exception;

        protected void dispose() throws Exception {
        }

        @BeforeEach
        void openStore() throws Exception {
            store = open();
        }

        @AfterEach
        void closeStore() throws Exception {
            try {
                if (store != null) {
                    store.close();
                }
            } finally {
                dispose();
            }
        }

        // ---- helpers ---------------------------------------------------------------------------------

        static StoredDelta set(long seq, String field, JsonNode value, long ts) {
            return new StoredDelta(seq, field, value, "writer-1", ts);
        }

        static StoredDelta del(long seq, String field, long ts) {
            return new StoredDelta(seq, field, null, "writer-1", ts);
        }

        static DocumentWrite write(String doc, long baseSeq, List<StoredDelta> deltas, Map<String, Long> clock, long ts) {
            return new DocumentWrite(doc, baseSeq, deltas, clock, null, ts, null, null);
        }

        static DocumentWrite write(String doc, long baseSeq, List<StoredDelta> deltas, Map<String, Long> clock, long ts,
                                   String clientId, String messageId) {
            return new DocumentWrite(doc, baseSeq, deltas, clock, null, ts, clientId, messageId);
        }

        /** Commits a write whose base is expected to be current: the store must not ask for a rebase. */
        CommitResult commit(DocumentWrite w) throws StorageException {
            return store.commit(w, current -> {
                throw new AssertionError("unexpected rebase of " + w + " onto " + current);
            });
        }

        /** Commits a write, rebasing it the way the sync core would if the store has moved on; records rebases. */
        CommitResult commitRebasing(DocumentWrite w, List<StoredDocument> rebasedOnto) throws StorageException {
            return store.commit(w, current -> {
                synchronized (rebasedOnto) {
                    rebasedOnto.add(current);
                }
                return rebase(w, current);
            });
        }

        /** The write renumbered after {@code current}, its clock merged into the stored one. */
        static DocumentWrite rebase(DocumentWrite w, StoredDocument current) {
            long seq = current.seq();
            List<StoredDelta> deltas = new ArrayList<>();
            for (StoredDelta d : w.deltas()) {
                deltas.add(new StoredDelta(++seq, d.field(), d.value(), d.writer(), d.timestamp()));
            }
            Map<String, Long> clock = new java.util.HashMap<>(current.clock());
            w.clock().forEach((k, v) -> clock.merge(k, v, Math::max));
            return new DocumentWrite(w.documentId(), current.seq(), deltas, clock, w.text(), w.timestamp(),
                    w.clientId(), w.messageId());
        }

        /** Sets {@code field=value} as the next delta of {@code doc}, based on its current sequence. */
        CommitResult setNext(String doc, String field, JsonNode value, long ts) throws StorageException {
            long base = store.currentSeq(doc);
            return commit(write(doc, base, List.of(set(base + 1, field, value, ts)), Map.of("c", base + 1), ts));
        }

        static long now() {
            return System.currentTimeMillis();
        }

        static void assertNear(long expected, long actual) {
            assertTrue(Math.abs(expected - actual) < 5_000, "expected about " + expected + " but was " + actual);
        }

        // ---- load / commit ---------------------------------------------------------------------------

        @Test
        void loadOfUnknownIdIsEmpty() throws Exception {
            assertEquals(Optional.empty(), store.load("no-such-doc"));
            assertEquals(0, store.currentSeq("no-such-doc"));
        }

        @Test
        void commitThenLoadReturnsEverything() throws Exception {
            long ts = now();
            TextState text = new TextState("{\"crdt\":[1,2,3]}", 7);
            CommitResult result = commit(new DocumentWrite("doc-1", 0,
                    List.of(set(1, "title", json("\"hello\""), ts), set(2, "count", json("3"), ts)),
                    Map.of("client-a", 2L, "client-b", 5_000_000_000L), text, ts, null, null));
            assertInstanceOf(CommitResult.Applied.class, result);

            StoredDocument doc = store.load("doc-1").orElseThrow();
            assertEquals("doc-1", doc.id());
            assertEquals(Map.of("title", json("\"hello\""), "count", json("3")), doc.fields());
            assertEquals(Map.of("client-a", 2L, "client-b", 5_000_000_000L), doc.clock());
            assertEquals(2, doc.seq());
            assertEquals(text, doc.text());
            assertNear(ts, doc.updatedAt());
            assertEquals(2, store.currentSeq("doc-1"));
        }

        @Test
        void deleteDeltaRemovesTheField() throws Exception {
            long ts = now();
            commit(write("doc-d", 0, List.of(set(1, "a", json("1"), ts), set(2, "b", json("2"), ts)), Map.of("c", 2L), ts));
            CommitResult r = commit(write("doc-d", 2, List.of(del(3, "a", ts)), Map.of("c", 3L), ts));
            assertInstanceOf(CommitResult.Applied.class, r);

            StoredDocument doc = store.load("doc-d").orElseThrow();
            assertEquals(Map.of("b", json("2")), doc.fields());
            assertEquals(3, doc.seq());

            // Deleting a field that does not exist, and set-then-delete inside one write.
            commit(write("doc-d", 3, List.of(del(4, "never", ts), set(5, "x", json("9"), ts), del(6, "x", ts)),
                    Map.of("c", 6L), ts));
            assertEquals(Map.of("b", json("2")), store.load("doc-d").orElseThrow().fields());
            // Delete-then-set inside one write keeps the value.
            commit(write("doc-d", 6, List.of(del(7, "b", ts), set(8, "b", json("\"back\""), ts)), Map.of("c", 8L), ts));
            assertEquals(Map.of("b", json("\"back\"")), store.load("doc-d").orElseThrow().fields());
        }

        @Test
        void everyKindOfJsonValueRoundTrips() throws Exception {
            Map<String, JsonNode> values = new LinkedHashMap<>();
            values.put("null", NullNode.getInstance());
            values.put("false", json("false"));
            values.put("true", json("true"));
            values.put("zero", json("0"));
            values.put("negative", json("-17"));
            values.put("decimal", json("1.5"));
            values.put("big", json("12345678901234567890123"));
            values.put("emptyString", json("\"\""));
            values.put("string", json("\"plain\""));
            values.put("emptyObject", json("{}"));
            values.put("emptyArray", json("[]"));
            values.put("nested", json("{\"a\":{\"b\":[1,{\"c\":null},false,\"\",0]},\"z\":\"y\"}"));
            values.put("array", json("[null,false,0,\"\",[],{},\"x\"]"));
            values.put("unicode", json("\"Grüße, 你好, ñ, \\u00e9, emoji \\ud83d\\ude00, quote \\\" backslash \\\\ tab \\t\""));
            values.put("ünïcødé-field 名前", json("\"value with field name in unicode\""));
            values.put("field.with.dots/and/slashes", json("1"));

            long ts = now();
            List<StoredDelta> deltas = new ArrayList<>();
            long seq = 0;
            for (Map.Entry<String, JsonNode> e : values.entrySet()) {
                deltas.add(set(++seq, e.getKey(), e.getValue(), ts));
            }
            assertInstanceOf(CommitResult.Applied.class, commit(write("doc-json", 0, deltas, Map.of("c", seq), ts)));

            StoredDocument doc = store.load("doc-json").orElseThrow();
            assertEquals(values.keySet(), doc.fields().keySet(), "falsy values must not be dropped");
            for (Map.Entry<String, JsonNode> e : values.entrySet()) {
                assertEquals(e.getValue(), doc.fields().get(e.getKey()), "field " + e.getKey());
            }
        }

        @Test
        void jsonValuesSurviveAnUpdateOfAnotherField() throws Exception {
            long ts = now();
            commit(write("doc-keep", 0, List.of(set(1, "zero", json("0"), ts), set(2, "no", json("false"), ts),
                    set(3, "nil", NullNode.getInstance(), ts)), Map.of("c", 3L), ts));
            commit(write("doc-keep", 3, List.of(set(4, "other", json("\"x\""), ts)), Map.of("c", 4L), ts));
            assertEquals(Map.of("zero", json("0"), "no", json("false"), "nil", NullNode.getInstance(), "other", json("\"x\"")),
                    store.load("doc-keep").orElseThrow().fields());
        }

        // ---- base sequence --------------------------------------------------------------------------

        @Test
        void staleBaseSeqIsRebasedOntoTheCurrentDocument() throws Exception {
            long ts = now();
            CommitResult first = commit(write("doc-s", 0, List.of(set(1, "a", json("1"), ts), set(2, "b", json("2"), ts)),
                    Map.of("c", 2L), ts));
            assertNull(assertInstanceOf(CommitResult.Applied.class, first).rebasedOnto(), "a current base is not rebased");

            // Written from base 1 (another instance wrote seq 2 meanwhile): rebased onto seq 2 under the lock.
            List<StoredDocument> seen = new ArrayList<>();
            CommitResult r = commitRebasing(write("doc-s", 1, List.of(set(2, "a", json("\"mine\""), ts)),
                    Map.of("x", 1L), ts, "client-x", "m-1"), seen);
            CommitResult.Applied applied = assertInstanceOf(CommitResult.Applied.class, r);
            assertEquals(1, seen.size(), "rebased exactly once");
            StoredDocument onto = seen.getFirst();
            assertEquals(onto, applied.rebasedOnto());
            assertEquals(2, onto.seq());
            assertEquals(Map.of("a", json("1"), "b", json("2")), onto.fields());
            assertEquals(Map.of("c", 2L), onto.clock());
            assertEquals(2, applied.write().baseSeq());
            assertEquals(List.of(3L), applied.write().deltas().stream().map(StoredDelta::seq).toList());

            // What is stored is the rebased write.
            StoredDocument doc = store.load("doc-s").orElseThrow();
            assertEquals(3, doc.seq());
            assertEquals(Map.of("a", json("\"mine\""), "b", json("2")), doc.fields());
            assertEquals(Map.of("c", 2L, "x", 1L), doc.clock());

            // The rebased write's message id is recorded: its retry is a duplicate.
            assertInstanceOf(CommitResult.Duplicate.class, commit(write("doc-s", 3, List.of(set(4, "a", json("0"), ts)),
                    Map.of("x", 2L), ts, "client-x", "m-1")));
            assertEquals(3, store.currentSeq("doc-s"));

            // A base ahead of the store is rebased too.
            seen.clear();
            assertInstanceOf(CommitResult.Applied.class, commitRebasing(write("doc-s", 9,
                    List.of(set(10, "b", json("false"), ts)), Map.of("x", 3L), ts), seen));
            assertEquals(1, seen.size());
            assertEquals(4, store.currentSeq("doc-s"));
            assertEquals(json("false"), store.load("doc-s").orElseThrow().fields().get("b"));
        }

        @Test
        void staleBaseSeqOnAnUnknownDocumentIsRebasedOntoAnEmptyOne() throws Exception {
            long ts = now();
            List<StoredDocument> seen = new ArrayList<>();
            CommitResult r = commitRebasing(write("doc-new", 4, List.of(set(5, "a", json("1"), ts)), Map.of("c", 5L), ts), seen);
            CommitResult.Applied applied = assertInstanceOf(CommitResult.Applied.class, r);
            assertEquals(1, seen.size());
            assertEquals(0, applied.rebasedOnto().seq());
            assertEquals(Map.of(), applied.rebasedOnto().fields());
            assertEquals(Map.of(), applied.rebasedOnto().clock());
            StoredDocument doc = store.load("doc-new").orElseThrow();
            assertEquals(1, doc.seq());
            assertEquals(Map.of("a", json("1")), doc.fields());
        }

        // ---- de-duplication -------------------------------------------------------------------------

        @Test
        void duplicateMessageIsNotAppliedTwice() throws Exception {
            long ts = now();
            assertInstanceOf(CommitResult.Applied.class, commit(write("doc-m", 0,
                    List.of(set(1, "n", json("1"), ts)), Map.of("c1", 1L), ts, "c1", "msg-1")));

            // The retry is computed from the new state (base 1) but carries the same ids.
            CommitResult again = commit(write("doc-m", 1, List.of(set(2, "n", json("2"), ts)),
                    Map.of("c1", 2L), ts, "c1", "msg-1"));
            assertInstanceOf(CommitResult.Duplicate.class, again);
            StoredDocument doc = store.load("doc-m").orElseThrow();
            assertEquals(1, doc.seq());
            assertEquals(Map.of("n", json("1")), doc.fields());
            assertEquals(Map.of("c1", 1L), doc.clock());

            // A retry from an old base is still reported as a duplicate (rebased or not).
            assertInstanceOf(CommitResult.Duplicate.class, commitRebasing(write("doc-m", 0,
                    List.of(set(1, "n", json("1"), ts)), Map.of("c1", 1L), ts, "c1", "msg-1"), new ArrayList<>()));
            assertEquals(1, store.currentSeq("doc-m"));

            // The same message id from another client is a different message.
            assertInstanceOf(CommitResult.Applied.class, commit(write("doc-m", 1,
                    List.of(set(2, "n", json("2"), ts)), Map.of("c1", 1L, "c2", 1L), ts, "c2", "msg-1")));
            assertEquals(2, store.currentSeq("doc-m"));
            assertEquals(json("2"), store.load("doc-m").orElseThrow().fields().get("n"));

            // The same pair on another document is a different message too.
            assertInstanceOf(CommitResult.Applied.class, commit(write("doc-m2", 0,
                    List.of(set(1, "n", json("1"), ts)), Map.of("c1", 1L), ts, "c1", "msg-1")));
        }

        @Test
        void writesWithoutMessageIdsAreNeverDeduplicated() throws Exception {
            long ts = now();
            assertInstanceOf(CommitResult.Applied.class, commit(write("doc-nd", 0,
                    List.of(set(1, "n", json("1"), ts)), Map.of("c", 1L), ts, "c1", null)));
            assertInstanceOf(CommitResult.Applied.class, commit(write("doc-nd", 1,
                    List.of(set(2, "n", json("1"), ts)), Map.of("c", 2L), ts, "c1", null)));
            assertInstanceOf(CommitResult.Applied.class, commit(write("doc-nd", 2,
                    List.of(set(3, "n", json("1"), ts)), Map.of("c", 3L), ts, null, "msg")));
            assertInstanceOf(CommitResult.Applied.class, commit(write("doc-nd", 3,
                    List.of(set(4, "n", json("1"), ts)), Map.of("c", 4L), ts, null, "msg")));
            assertEquals(4, store.currentSeq("doc-nd"));
        }

        @Test
        void concurrentWritesFromTheSameBaseAreAllAppliedInSomeOrder() throws Exception {
            int writers = 8;
            for (String doc : List.of("doc-race-new", "doc-race-old")) {
                long ts = now();
                if (doc.equals("doc-race-old")) {
                    setNext(doc, "w", json("-1"), ts);
                }
                long base = store.currentSeq(doc);
                List<java.util.concurrent.Future<CommitResult>> results = new ArrayList<>();
                List<StoredDocument> seen = new ArrayList<>();
                java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
                try (var pool = java.util.concurrent.Executors.newVirtualThreadPerTaskExecutor()) {
                    for (int i = 0; i < writers; i++) {
                        int n = i;
                        results.add(pool.submit(() -> {
                            go.await();
                            return commitRebasing(write(doc, base, List.of(set(base + 1, "w" + n, json(String.valueOf(n)), ts)),
                                    Map.of("c" + n, 1L), ts, "c" + n, "m"), seen);
                        }));
                    }
                    go.countDown();
                }
                java.util.Set<Long> seqs = new java.util.TreeSet<>();
                int notRebased = 0;
                for (var f : results) {
                    CommitResult.Applied a = assertInstanceOf(CommitResult.Applied.class, f.get(), doc);
                    seqs.add(a.write().lastSeq());
                    if (a.rebasedOnto() == null) {
                        notRebased++;
                    }
                }
                assertEquals(writers, seqs.size(), "every write got its own sequence number: " + seqs);
                assertEquals(base + writers, (long) ((java.util.TreeSet<Long>) seqs).last());
                assertTrue(notRebased <= 1, "at most the first write needs no rebase");
                assertEquals(writers - notRebased, seen.size());
                assertEquals(base + writers, store.currentSeq(doc));
                StoredDocument stored = store.load(doc).orElseThrow();
                for (int i = 0; i < writers; i++) {
                    assertEquals(json(String.valueOf(i)), stored.fields().get("w" + i), "no write lost: w" + i);
                    assertEquals(1L, stored.clock().get("c" + i));
                }
            }
        }

        // ---- sequence and deltas --------------------------------------------------------------------

        @Test
        void currentSeqFollowsCommits() throws Exception {
            long ts = now();
            assertEquals(0, store.currentSeq("doc-q"));
            commit(write("doc-q", 0, List.of(set(1, "a", json("1"), ts)), Map.of("c", 1L), ts));
            assertEquals(1, store.currentSeq("doc-q"));
            commit(write("doc-q", 1, List.of(set(2, "a", json("2"), ts), set(3, "b", json("3"), ts),
                    del(4, "a", ts)), Map.of("c", 4L), ts));
            assertEquals(4, store.currentSeq("doc-q"));
            // A write of the clock alone keeps the sequence; one that changes the text takes a number of its own.
            assertInstanceOf(CommitResult.Applied.class, commit(new DocumentWrite("doc-q", 4, List.of(),
                    Map.of("c", 5L), null, ts, null, null)));
            assertEquals(4, store.currentSeq("doc-q"));
            assertInstanceOf(CommitResult.Applied.class, commit(new DocumentWrite("doc-q", 4, List.of(),
                    Map.of("c", 6L), new TextState("t", 1), ts, null, null)));
            assertEquals(5, store.currentSeq("doc-q"));
            assertEquals(5, store.load("doc-q").orElseThrow().seq());
        }

        // ---- list / delete --------------------------------------------------------------------------

        @Test
        void listPagesByIdWithinAPrefixAndSkipsDocumentsWithoutContent() throws Exception {
            long ts = now();
            assertEquals(List.of(), store.list("", null, 10));
            setNext("team-b", "f", json("1"), ts);
            setNext("team-a", "f", json("1"), ts);
            setNext("team-a", "g", json("2"), ts);
            setNext("other", "f", json("1"), ts);
            setNext("team%_", "f", json("1"), ts); // LIKE wildcards in an id are plain characters of a prefix
            setNext("team-gone", "f", json("1"), ts);
            commit(write("team-gone", 1, List.of(del(2, "f", ts)), Map.of("c", 2L), ts));

            List<DocumentSummary> all = store.list("", null, 10);
            assertEquals(List.of("other", "team%_", "team-a", "team-b"), all.stream().map(DocumentSummary::id).toList());
            DocumentSummary a = all.get(2);
            assertEquals(2, a.fields());
            assertEquals(2, a.seq());
            assertNear(ts, a.updatedAt());

            assertEquals(List.of("team-a", "team-b"), store.list("team-", null, 10).stream().map(DocumentSummary::id).toList());
            assertEquals(List.of("team%_"), store.list("team%", null, 10).stream().map(DocumentSummary::id).toList());
            // Paging: the last id of a page is the cursor of the next.
            assertEquals(List.of("team%_", "team-a"), store.list("team", null, 2).stream().map(DocumentSummary::id).toList());
            assertEquals(List.of("team-b"), store.list("team", "team-a", 2).stream().map(DocumentSummary::id).toList());
            assertEquals(List.of(), store.list("team", "team-b", 2));
        }

        @Test
        void snapshotsCopyTheCommittedFieldsAndClockNewestFirst() throws Exception {
            long ts = now();
            assertEquals(Optional.empty(), store.saveSnapshot("no-such-doc"));
            setNext("doc-snap", "title", json("\"one\""), ts);
            Snapshot first = store.saveSnapshot("doc-snap").orElseThrow();
            setNext("doc-snap", "title", json("\"two\""), ts);
            setNext("doc-snap", "extra", json("3"), ts);
            Thread.sleep(5);
            Snapshot second = store.saveSnapshot("doc-snap").orElseThrow();

            assertEquals("doc-snap", first.documentId());
            assertEquals(json("\"one\""), first.state().path("fields").path("title"));
            assertEquals(1, first.state().path("fields").size());
            assertEquals(Map.of("c", 1L), first.version());
            assertEquals(Map.of("c", 3L), second.version());
            assertTrue(first.sizeBytes() > 0);
            assertNear(ts, first.createdAt());
            assertFalse(first.compressed());

            assertEquals(first, store.snapshot(first.id()).orElseThrow());
            assertEquals(List.of(second.id(), first.id()), store.snapshots("doc-snap", 10).stream().map(Snapshot::id).toList());
            assertEquals(List.of(second.id()), store.snapshots("doc-snap", 1).stream().map(Snapshot::id).toList());
            assertEquals(List.of(), store.snapshots("other-doc", 10));
            assertEquals(Optional.empty(), store.snapshot("not-a-snapshot-id"));
            assertEquals(Optional.empty(), store.snapshot("00000000-0000-0000-0000-000000000000"));

            assertTrue(store.deleteSnapshot(first.id()));
            assertFalse(store.deleteSnapshot(first.id()));
            assertFalse(store.deleteSnapshot("not-a-snapshot-id"));
            assertEquals(List.of(second.id()), store.snapshots("doc-snap", 10).stream().map(Snapshot::id).toList());
            // Snapshots go with their document (the foreign key cascades).
            assertTrue(store.delete("doc-snap"));
            assertEquals(Optional.empty(), store.snapshot(second.id()));
        }

        @Test
        void deleteRemovesTheDocumentWithItsDeltasAndMessageIds() throws Exception {
            long ts = now();
            commit(new DocumentWrite("doc-del", 0, List.of(set(1, "a", json("1"), ts)), Map.of("c", 1L),
                    new TextState("s", 1), ts, "c1", "m1"));
            setNext("doc-keep", "a", json("1"), ts);

            assertTrue(store.delete("doc-del"));
            assertEquals(Optional.empty(), store.load("doc-del"));
            assertEquals(0, store.currentSeq("doc-del"));
            assertEquals(List.of("doc-keep"), store.list("", null, 10).stream().map(DocumentSummary::id).toList());
            assertFalse(store.delete("doc-del"));
            assertFalse(store.delete("never-existed"));

            // The id can be used again from scratch; its old message ids are gone with it.
            CommitResult r = commit(new DocumentWrite("doc-del", 0, List.of(set(1, "b", json("2"), ts)),
                    Map.of("d", 1L), null, ts, "c1", "m1"));
            assertInstanceOf(CommitResult.Applied.class, r);
            StoredDocument doc = store.load("doc-del").orElseThrow();
            assertEquals(Map.of("b", json("2")), doc.fields());
            assertEquals(Map.of("d", 1L), doc.clock());
            assertNull(doc.text());
            assertEquals(1, doc.seq());
        }

        // ---- clock and text -------------------------------------------------------------------------

        @Test
        void clockIsStoredAsGiven() throws Exception {
            long ts = now();
            commit(write("doc-clk", 0, List.of(set(1, "a", json("1"), ts)), Map.of("a", 1L), ts));
            assertEquals(Map.of("a", 1L), store.load("doc-clk").orElseThrow().clock());

            commit(write("doc-clk", 1, List.of(set(2, "a", json("2"), ts)),
                    Map.of("a", 3L, "b", 7L, "big", Long.MAX_VALUE), ts));
            assertEquals(Map.of("a", 3L, "b", 7L, "big", Long.MAX_VALUE), store.load("doc-clk").orElseThrow().clock());

            commit(write("doc-clk", 2, List.of(set(3, "b", json("1"), ts)),
                    Map.of("a", 3L, "b", 8L, "big", Long.MAX_VALUE, "c", 0L), ts));
            assertEquals(Map.of("a", 3L, "b", 8L, "big", Long.MAX_VALUE, "c", 0L), store.load("doc-clk").orElseThrow().clock());

            // The write's clock is the document clock: keys it no longer has (compacted away) are gone.
            commit(write("doc-clk", 3, List.of(set(4, "b", json("2"), ts)), Map.of("b", 9L, "big", Long.MAX_VALUE), ts));
            assertEquals(Map.of("b", 9L, "big", Long.MAX_VALUE), store.load("doc-clk").orElseThrow().clock());
        }

        @Test
        void textStateIsKeptUntilReplaced() throws Exception {
            long ts = now();
            String crdt = "{\"ops\":[{\"id\":\"a:1\",\"ch\":\"é\\\"\"}],\"nul\":null,\"zero\":0}";
            commit(new DocumentWrite("doc-t", 0, List.of(), Map.of("a", 1L), new TextState(crdt, 1), ts, null, null));
            StoredDocument doc = store.load("doc-t").orElseThrow();
            assertEquals(new TextState(crdt, 1), doc.text());
            assertEquals(Map.of(), doc.fields());
            assertEquals(1, doc.seq());

            // A field write does not touch the text.
            commit(write("doc-t", 1, List.of(set(2, "title", json("\"t\""), ts)), Map.of("a", 2L), ts));
            doc = store.load("doc-t").orElseThrow();
            assertEquals(new TextState(crdt, 1), doc.text());
            assertEquals(Map.of("title", json("\"t\"")), doc.fields());

            // A new text state replaces it and keeps the fields; an empty state is a state too.
            commit(new DocumentWrite("doc-t", 2, List.of(), Map.of("a", 3L), new TextState("", 0), ts, null, null));
            doc = store.load("doc-t").orElseThrow();
            assertEquals(new TextState("", 0), doc.text());
            assertEquals(Map.of("title", json("\"t\"")), doc.fields());
        }

        // ---- operations -----------------------------------------------------------------------------

        @Test
        void healthyAndDescribed() {
            assertTrue(store.healthy());
            assertNotNull(store.describe());
            assertFalse(store.describe().isBlank());
        }

        @Test
        void cleanupReturnsCounts() throws Exception {
            setNext("doc-cl", "a", json("1"), now());
            StorageAdapter.Cleanup c = store.cleanup(Duration.ofDays(30), Duration.ofHours(24));
            assertNotNull(c);
            assertTrue(c.deltas() >= 0 && c.appliedMessages() >= 0 && c.sessions() >= 0, c.toString());
            // Nothing recent is removed.
            assertEquals(new StorageAdapter.Cleanup(0, 0, 0, false), store.cleanup(Duration.ZERO, Duration.ZERO));
            assertEquals(Map.of("a", json("1")), store.load("doc-cl").orElseThrow().fields());
        }
    }

    @Nested
    class Memory extends Contract {
        @Override
        protected StorageAdapter open() {
            return new MemoryStorage(1000);
        }
    }

    /** The same contract with group commit on: writes from several threads share transactions. */
    @Nested
    class PostgresGroupCommit extends Postgres {
        @Override
        protected Settings.Storage settings(String url) {
            return postgresSettings(url, 16, 2);
        }
    }

    @Nested
    class Postgres extends Contract {
        private TestDatabase db;

        protected Settings.Storage settings(String url) {
            return postgresSettings(url);
        }

        @Override
        protected StorageAdapter open() throws Exception {
            db = TestDatabase.create();
            return PostgresStorage.open(settings(db.url()));
        }

        @Override
        protected void dispose() {
            if (db != null) {
                db.close();
            }
        }

        private void sql(String statement) throws SQLException {
            try (Connection c = db.connect(); Statement s = c.createStatement()) {
                s.execute(statement);
            }
        }

        private long count(String query) throws SQLException {
            try (Connection c = db.connect(); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(query)) {
                rs.next();
                return rs.getLong(1);
            }
        }

        @Test
        void cleanupRemovesOldRowsInBatchesUntilNoneAreLeft() throws Exception {
            long ts = now();
            setNext("doc-old", "a", json("1"), ts);
            setNext("doc-new", "a", json("1"), ts);
            // More old rows of each kind than one batch (3) holds, as the TS server and old versions wrote them.
            sql("INSERT INTO deltas (document_id, client_id, operation_type, field_path, value, clock_value, timestamp)"
                    + " SELECT 'doc-old', 'ts-client', 'set', 'a', NULL, n, NOW() - INTERVAL '40 days' FROM generate_series(1, 10) n");
            sql("INSERT INTO synckit_applied_messages (document_id, client_id, message_id, seq, applied_at)"
                    + " SELECT 'doc-old', 'c', 'old-' || n, n, NOW() - INTERVAL '40 days' FROM generate_series(1, 7) n");
            sql("INSERT INTO synckit_applied_messages (document_id, client_id, message_id, seq) VALUES ('doc-new', 'c', 'new-1', 1)");
            sql("INSERT INTO sessions (id, user_id, last_seen) SELECT 's-old-' || n, 'u', NOW() - INTERVAL '2 days'"
                    + " FROM generate_series(1, 6) n");
            sql("INSERT INTO sessions (id, user_id, last_seen) VALUES ('s-new', 'u', NOW())");
            long recentDeltas = count("SELECT COUNT(*) FROM deltas WHERE timestamp > NOW() - INTERVAL '1 day'");

            try (PostgresStorage small = PostgresStorage.open(postgresSettings(db.url(), 1, 1, Duration.ofSeconds(2), 3))) {
                assertEquals(new StorageAdapter.Cleanup(10, 7, 6, false), small.cleanup(Duration.ofDays(30), Duration.ofHours(24)));
                assertEquals(recentDeltas, count("SELECT COUNT(*) FROM deltas"));
                assertEquals(1, count("SELECT COUNT(*) FROM synckit_applied_messages"));
                assertEquals(1, count("SELECT COUNT(*) FROM sessions"));
                // Documents themselves are untouched.
                assertEquals(Map.of("a", json("1")), small.load("doc-old").orElseThrow().fields());
                // Again: nothing left to remove.
                assertEquals(new StorageAdapter.Cleanup(0, 0, 0, false), small.cleanup(Duration.ofDays(30), Duration.ofHours(24)));
            }
        }

        @Test
        void cleanupRunsOnOneInstanceAtATime() throws Exception {
            sql("INSERT INTO sessions (id, user_id, last_seen) VALUES ('s-old', 'u', NOW() - INTERVAL '2 days')");
            // Another instance in the middle of its cleanup holds the lock in its session.
            try (Connection other = db.connect(); Statement st = other.createStatement()) {
                st.execute("SELECT pg_advisory_lock(" + RetentionSweep.CLEANUP_LOCK + ")");
                assertEquals(new StorageAdapter.Cleanup(0, 0, 0, true), store.cleanup(Duration.ofDays(30), Duration.ofHours(24)));
                assertEquals(1, count("SELECT COUNT(*) FROM sessions"), "a skipped round deletes nothing");
                st.execute("SELECT pg_advisory_unlock(" + RetentionSweep.CLEANUP_LOCK + ")");
            }
            // It finished: the next round runs, and leaves the lock free for the round after.
            assertEquals(new StorageAdapter.Cleanup(0, 0, 1, false), store.cleanup(Duration.ofDays(30), Duration.ofHours(24)));
            assertEquals(new StorageAdapter.Cleanup(0, 0, 0, false), store.cleanup(Duration.ofDays(30), Duration.ofHours(24)));
            try (Connection other = db.connect(); Statement st = other.createStatement();
                 ResultSet rs = st.executeQuery("SELECT pg_try_advisory_lock(" + RetentionSweep.CLEANUP_LOCK + ")")) {
                assertTrue(rs.next() && rs.getBoolean(1), "the cleanup released its lock");
            }
        }

        @Test
        void concurrentCleanupsOfTwoInstancesRunOneAndSkipTheOther() throws Exception {
            sql("INSERT INTO sessions (id, user_id, last_seen) SELECT 's-' || n, 'u', NOW() - INTERVAL '2 days'"
                    + " FROM generate_series(1, 3000) n");
            try (PostgresStorage second = PostgresStorage.open(postgresSettings(db.url(), 1, 1, Duration.ofSeconds(2), 1))) {
                // Batches of one make the second store's sweep long enough that the other finds it running.
                var running = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                    try {
                        return second.cleanup(Duration.ofDays(30), Duration.ofHours(24));
                    } catch (StorageException e) {
                        throw new IllegalStateException(e);
                    }
                });
                dev.synckit.server.testing.Await.waitFor("the sweep to start", Duration.ofSeconds(10), () -> {
                    try {
                        return count("SELECT COUNT(*) FROM sessions") < 3000;
                    } catch (SQLException e) {
                        throw new IllegalStateException(e);
                    }
                });
                StorageAdapter.Cleanup meanwhile = store.cleanup(Duration.ofDays(30), Duration.ofHours(24));
                StorageAdapter.Cleanup first = running.get(30, java.util.concurrent.TimeUnit.SECONDS);
                assertTrue(meanwhile.skipped(), "one instance ran, the other skipped: " + meanwhile);
                assertEquals(new StorageAdapter.Cleanup(0, 0, 3000, false), first);
            }
        }

        @Test
        void aDocumentKeepsItsNewestDeltaRowsAndOneClockRowPerKeyOfTheLatestClock() throws Exception {
            long ts = now();
            sql("INSERT INTO documents (id, state) VALUES ('doc-rows', '{\"id\":\"doc-rows\",\"fields\":{}}')");
            sql("INSERT INTO deltas (document_id, client_id, operation_type, field_path, value, clock_value)"
                    + " VALUES ('doc-rows', 'ts-client', 'set', 'a', NULL, 1)");
            commit(write("doc-rows", 0, List.of(set(1, "a", json("1"), ts), set(2, "b", json("2"), ts)),
                    Map.of("c1", 1L, "c2", 2L, "c3", 3L), ts, "c1", "m-1"));
            long seq = 2;
            for (int i = 0; i < 250; i++) {
                commit(write("doc-rows", seq, List.of(set(seq + 1, "a", json(String.valueOf(i)), ts), del(seq + 2, "b", ts)),
                        Map.of("c3", 3L, "server", seq + 2), ts));
                seq += 2;
            }
            // The settings keep 200: the newest 200 of ours, in the TS row format; the TS server's row is left
            // to the age-based cleanup.
            assertEquals(200, count("SELECT COUNT(*) FROM deltas WHERE document_id = 'doc-rows' AND seq IS NOT NULL"));
            assertEquals(seq - 199, count("SELECT MIN(seq) FROM deltas WHERE document_id = 'doc-rows'"));
            assertEquals(1, count("SELECT COUNT(*) FROM deltas WHERE document_id = 'doc-rows' AND seq IS NULL"));
            assertEquals(1, count("SELECT COUNT(*) FROM deltas WHERE document_id = 'doc-rows' AND seq = " + seq
                    + " AND operation_type = 'delete' AND value IS NULL AND field_path = 'b'"));
            // Only the keys of the latest clock have rows.
            assertEquals(2, count("SELECT COUNT(*) FROM vector_clocks WHERE document_id = 'doc-rows'"));
        }

        @Test
        void noDeltaRowsWhenNoneAreKept() throws Exception {
            try (PostgresStorage none = PostgresStorage.open(new Settings.Storage("postgres", db.url(), "", "", 4,
                    Duration.ofSeconds(5), true, 1, 1, Duration.ZERO, Duration.ofDays(30), Duration.ofHours(24),
                    Duration.ofSeconds(5), Duration.ofSeconds(2), 1000, 0))) {
                long ts = now();
                none.commit(write("doc-none", 0, List.of(set(1, "a", json("1"), ts)), Map.of("c", 1L), ts), c -> {
                    throw new AssertionError();
                });
                assertEquals(Map.of("a", json("1")), none.load("doc-none").orElseThrow().fields());
                assertEquals(0, count("SELECT COUNT(*) FROM deltas"));
            }
        }

        @Test
        void stateIsStoredInTheTsShape() throws Exception {
            long ts = now();
            commit(write("doc-shape", 0, List.of(set(1, "title", json("\"x\""), ts), set(2, "n", json("0"), ts)),
                    Map.of("c", 2L), ts));
            commit(write("doc-shape", 2, List.of(del(3, "title", ts)), Map.of("c", 3L), ts));
            try (Connection c = db.connect();
                 PreparedStatement ps = c.prepareStatement("SELECT state::text, version FROM documents WHERE id = ?")) {
                ps.setString(1, "doc-shape");
                try (ResultSet rs = ps.executeQuery()) {
                    assertTrue(rs.next());
                    assertEquals(json("{\"id\":\"doc-shape\",\"fields\":{\"n\":0}}"), json(rs.getString(1)));
                    assertTrue(rs.getLong(2) >= 2, "the version trigger counts updates");
                }
            }
        }
    }
}
