package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.Message.FieldChange;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.pubsub.LocalFanOut;
import dev.synckit.server.storage.CommitResult;
import dev.synckit.server.storage.DocumentSummary;
import dev.synckit.server.storage.DocumentWrite;
import dev.synckit.server.storage.MemoryStorage;
import dev.synckit.server.storage.Snapshot;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.storage.StorageException;
import dev.synckit.server.storage.StoredDocument;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The write path and clock rules of {@link Documents}, with an in-process peer. */
class DocumentsTest {
    private static final java.util.function.Consumer<Exception> NO_FAILURE = e -> {
        if (e != null) {
            throw new AssertionError("write failed", e);
        }
    };

    /** Records what the sync core sends it. */
    static final class RecordingPeer implements Peer {
        final List<Outbound> sent = new CopyOnWriteArrayList<>();
        final String id;

        RecordingPeer(String id) {
            this.id = id;
        }

        @Override
        public String id() {
            return id;
        }

        @Override
        public void send(Outbound message) {
            sent.add(message);
        }

        @Override
        public void subscribed(String documentId) {
        }

        @Override
        public void unsubscribed(String documentId) {
        }

        List<String> types() {
            return sent.stream().map(o -> o.type().wireName()).toList();
        }
    }

    /** A store that can be switched to fail, standing in for a database outage. */
    static class FlakyStorage implements StorageAdapter {
        final MemoryStorage inner = new MemoryStorage(100);
        volatile boolean failing;

        @Override
        public Optional<StoredDocument> load(String documentId) {
            return inner.load(documentId);
        }

        @Override
        public CommitResult commit(DocumentWrite write, Rebase rebase) throws StorageException {
            if (failing) {
                throw new StorageException("database unreachable", null);
            }
            return inner.commit(write, rebase);
        }

        @Override
        public long currentSeq(String documentId) {
            return inner.currentSeq(documentId);
        }

        @Override
        public long claim(String documentId) {
            return inner.claim(documentId);
        }

        @Override
        public Cleanup cleanup(Duration deltaRetention, Duration sessionRetention) {
            return inner.cleanup(deltaRetention, sessionRetention);
        }

        @Override
        public List<DocumentSummary> list(String prefix, String after, int limit) {
            return inner.list(prefix, after, limit);
        }

        @Override
        public Optional<Snapshot> saveSnapshot(String documentId) {
            return inner.saveSnapshot(documentId);
        }

        @Override
        public Optional<Snapshot> snapshot(String snapshotId) {
            return inner.snapshot(snapshotId);
        }

        @Override
        public List<Snapshot> snapshots(String documentId, int limit) {
            return inner.snapshots(documentId, limit);
        }

        @Override
        public boolean deleteSnapshot(String snapshotId) {
            return inner.deleteSnapshot(snapshotId);
        }

        @Override
        public boolean delete(String documentId) {
            return inner.delete(documentId);
        }

        @Override
        public boolean healthy() {
            return !failing;
        }

        @Override
        public String describe() {
            return "flaky";
        }

        @Override
        public void close() {
        }
    }

    private static List<FieldChange> set(String field, Object value) {
        return List.of(new FieldChange(field, Json.MAPPER.valueToTree(value)));
    }

    @Test
    void clockStaysBoundedHoweverManyClientsWriteAndKeepsItsMaximum() {
        Map<String, Long> clock = Map.of();
        long previous = 0;
        for (int i = 0; i < 1000; i++) {
            // Every write from a new client whose counter is below the document's maximum, and one that is above.
            Map<String, Long> client = i % 100 == 99 ? Map.of("client-" + i, previous + 5) : Map.of("client-" + i, 1L);
            clock = Documents.nextClock(clock, client);
            assertTrue(clock.size() <= Documents.MAX_CLOCK_KEYS, "clock has " + clock.size() + " keys: " + clock);
            long max = Documents.max(clock);
            assertTrue(max > previous, "max " + max + " did not grow past " + previous + " in " + clock);
            assertTrue(max >= client.values().iterator().next(), "the writer's counter is covered");
            previous = max;
        }
        // Below the bound nothing is dropped.
        assertEquals(Map.of("a", 3L, "b", 4L), Documents.nextClock(Map.of("a", 3L), Map.of("b", 4L)));
    }

    @Test
    void nextClockIsThePerKeyMaximumWithTheServerBumpAndTheLargestKeysKept() {
        java.util.Random random = new java.util.Random(42);
        for (int round = 0; round < 20_000; round++) {
            Map<String, Long> current = randomClock(random);
            Map<String, Long> client = randomClock(random);
            // The plain definition: merge by maximum, raise the server key unless the maximum grew, keep the largest.
            Map<String, Long> merged = new java.util.HashMap<>(current);
            client.forEach((k, v) -> merged.merge(k, v, Math::max));
            if (Documents.max(merged) <= Documents.max(current)) {
                merged.put(Documents.SERVER_CLOCK_KEY, Documents.max(current) + 1);
            }
            Map<String, Long> expected = merged.entrySet().stream()
                    .sorted(Map.Entry.<String, Long>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey()))
                    .limit(Documents.MAX_CLOCK_KEYS)
                    .collect(java.util.stream.Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue));
            assertEquals(expected, Documents.nextClock(current, client), current + " + " + client);
        }
    }

    private static Map<String, Long> randomClock(java.util.Random random) {
        Map<String, Long> clock = new java.util.HashMap<>();
        int size = random.nextInt(Documents.MAX_CLOCK_KEYS + 3);
        for (int i = 0; i < size; i++) {
            String key = random.nextInt(8) == 0 ? Documents.SERVER_CLOCK_KEY : "c" + random.nextInt(14);
            clock.put(key, (long) random.nextInt(6));
        }
        return Map.copyOf(clock);
    }

    @Test
    void clockMaximumGrowsWithEveryWriteEvenWhenClientClocksDoNot() {
        Map<String, Long> clock = Map.of();
        long previous = 0;
        List<Map<String, Long>> clientClocks = List.of(Map.of(), Map.of("a", 5L), Map.of("b", 1L), Map.of("a", 5L), Map.of());
        for (Map<String, Long> client : clientClocks) {
            clock = Documents.nextClock(clock, client);
            long max = Documents.max(clock);
            assertTrue(max > previous, "max " + max + " did not grow past " + previous + " in " + clock);
            previous = max;
        }
        // A client that is ahead keeps its own counter as the maximum: no server bump masks it.
        Map<String, Long> ahead = Documents.nextClock(Map.of("a", 5L), Map.of("a", 9L));
        assertEquals(Map.of("a", 9L), ahead);
    }

    @Test
    void failedCommitLeavesNoTraceAndSendsNoAck() throws Exception {
        FlakyStorage storage = new FlakyStorage();
        Documents documents = new Documents(storage, new LocalFanOut(), 100, Duration.ofMillis(50), Long.MAX_VALUE);
        RecordingPeer writer = new RecordingPeer("conn-1");
        documents.write(writer, true, "d", set("title", "kept"), Map.of(), List.of(), null, "m1", NO_FAILURE);
        assertEquals(List.of("ack", "delta"), writer.types());

        storage.failing = true;
        writer.sent.clear();
        List<Exception> failures = new ArrayList<>();
        documents.write(writer, true, "d", set("title", "lost"), Map.of(), List.of(), null, "m2", e -> { if (e != null) failures.add(e); });
        assertEquals(1, failures.size(), "the writer is told of the failure");
        assertEquals(List.of(), writer.types(), "a failed write must be neither acknowledged nor broadcast");

        storage.failing = false;
        RecordingPeer reader = new RecordingPeer("conn-2");
        documents.subscribe(reader, "d", "r1");
        ObjectNode state = (ObjectNode) reader.sent.getFirst().body().get("state");
        assertEquals("kept", state.get("title").asText());
        assertEquals(1, storage.inner.load("d").orElseThrow().seq());
    }

    @Test
    void lastAppliedWriteWinsAndDeletesRemoveTheField() throws Exception {
        Documents documents = new Documents(new MemoryStorage(100), new LocalFanOut(), 100, Duration.ofMillis(50), Long.MAX_VALUE);
        RecordingPeer a = new RecordingPeer("conn-1");
        RecordingPeer b = new RecordingPeer("conn-2");
        documents.write(a, true, "d", set("f", "from-a"), Map.of("client-z", 100L), List.of(), null, "1", NO_FAILURE);
        documents.write(b, true, "d", set("f", "from-b"), Map.of(), List.of(), null, "2", NO_FAILURE);
        documents.write(b, true, "d", List.of(new FieldChange("g", Json.object().put("__deleted", true))), Map.of(), List.of(), null, "3", NO_FAILURE);

        RecordingPeer reader = new RecordingPeer("conn-3");
        documents.subscribe(reader, "d", "r");
        ObjectNode body = (ObjectNode) reader.sent.getFirst().body();
        assertEquals("from-b", body.get("state").get("f").asText());
        assertFalse(body.get("state").has("g"));
        assertEquals(102, body.get("clock").get(Documents.SERVER_CLOCK_KEY).asLong());

        // Writers see every broadcast in apply order, ack before the delta that it caused.
        List<String> fieldsSeenByA = new ArrayList<>();
        a.sent.stream().filter(o -> o.type().wireName().equals("delta"))
                .forEach(o -> fieldsSeenByA.add(o.body().get("field").asText() + "=" + o.body().get("value")));
        assertEquals(List.of("f=\"from-a\"", "f=\"from-b\"", "g={\"__deleted\":true}"), fieldsSeenByA);
        assertEquals("ack", b.types().getFirst());
    }

    @Test
    void idleDocumentsBeyondTheLimitAreEvictedButNotLost() throws Exception {
        MemoryStorage storage = new MemoryStorage(100);
        Documents documents = new Documents(storage, new LocalFanOut(), 2, Duration.ofMillis(50), Long.MAX_VALUE);
        RecordingPeer writer = new RecordingPeer("conn-1");
        for (int i = 0; i < 5; i++) {
            documents.write(writer, true, "d" + i, set("v", i), Map.of(), List.of(), null, null, NO_FAILURE);
            documents.unsubscribe(writer, "d" + i);
        }
        assertEquals(3, documents.evictIdle());
        assertEquals(2, documents.cachedCount());
        RecordingPeer reader = new RecordingPeer("conn-2");
        documents.subscribe(reader, "d0", "r");
        assertEquals(0, reader.sent.getFirst().body().get("state").get("v").asInt());
    }

    @Test
    void aRetriedMessageIsAcknowledgedAgainButAppliedOnce() throws Exception {
        MemoryStorage storage = new MemoryStorage(100);
        Documents documents = new Documents(storage, new LocalFanOut(), 100, Duration.ofMillis(50), Long.MAX_VALUE);
        RecordingPeer writer = new RecordingPeer("conn-1");
        documents.write(writer, true, "d", set("n", 1), Map.of(), List.of(), "client-a", "msg-1", NO_FAILURE);
        documents.write(writer, true, "d", set("n", 2), Map.of(), List.of(), "client-a", "msg-1", NO_FAILURE);
        assertEquals(List.of("ack", "delta", "ack"), writer.types());
        assertEquals(1, storage.load("d").orElseThrow().fields().get("n").asInt());
        assertEquals(1, storage.load("d").orElseThrow().seq());
        // The same message id from another client is a different write.
        documents.write(writer, true, "d", set("n", 3), Map.of(), List.of(), "client-b", "msg-1", NO_FAILURE);
        assertEquals(3, storage.load("d").orElseThrow().fields().get("n").asInt());
    }

    @Test
    void aRemoteWriteAppliedInOrderLeavesTheNextLocalWriteNothingToRebase() throws Exception {
        java.util.concurrent.atomic.AtomicInteger rebases = new java.util.concurrent.atomic.AtomicInteger();
        FlakyStorage counting = new FlakyStorage() {
            @Override
            public CommitResult commit(DocumentWrite write, Rebase rebase) throws StorageException {
                return inner.commit(write, base -> {
                    rebases.incrementAndGet();
                    return rebase.onto(base);
                });
            }
        };
        Documents a = new Documents(counting, new LocalFanOut(), 100, Duration.ofMillis(50), Long.MAX_VALUE);
        Documents b = new Documents(counting, new LocalFanOut(), 100, Duration.ofMillis(50), Long.MAX_VALUE);
        RecordingPeer onB = new RecordingPeer("conn-2");
        b.subscribe(onB, "d", "r");
        for (int i = 1; i <= 3; i++) {
            a.write(new RecordingPeer("conn-1"), true, "d", set("x", "a" + i), Map.of(), List.of(), null, "a" + i, NO_FAILURE);
            StoredDocument stored = counting.load("d").orElseThrow();
            // What Redis delivers to b: the write that is exactly next for its cache.
            b.applyRemote(new dev.synckit.server.pubsub.FanOut.RemoteWrite("d", stored.seq(), stored.seq(),
                    Map.of("x", Json.MAPPER.valueToTree("a" + i)), stored.clock(), null, null, List.of()));
            rebases.set(0);
            b.write(onB, true, "d", set("y", "b" + i), Map.of(), List.of(), null, "b" + i, NO_FAILURE);
            assertEquals(0, rebases.get(), "round " + i + ": b computed its write from a stale tip");
            a.subscribe(new RecordingPeer("conn-3"), "d", "catch-up-" + i); // a hears of b's write the slow way
        }
        assertEquals(6, counting.currentSeq("d"));
    }

    @Test
    void twoInstancesOnOneStoreStayConsistent() throws Exception {
        MemoryStorage shared = new MemoryStorage(100);
        Documents a = new Documents(shared, new LocalFanOut(), 100, Duration.ofMillis(50), Long.MAX_VALUE);
        Documents b = new Documents(shared, new LocalFanOut(), 100, Duration.ofMillis(50), Long.MAX_VALUE);
        RecordingPeer onA = new RecordingPeer("conn-1");
        RecordingPeer onB = new RecordingPeer("conn-1");
        for (int i = 0; i < 10; i++) {
            a.write(onA, true, "d", set("x", "a" + i), Map.of(), List.of(), null, "a" + i, NO_FAILURE);
            b.write(onB, true, "d", set("x", "b" + i), Map.of(), List.of(), null, "b" + i, NO_FAILURE);
        }
        assertEquals(20, shared.currentSeq("d"));
        // A's subscriber learned B's last value when A refreshed on its next write or read.
        RecordingPeer reader = new RecordingPeer("conn-9");
        a.subscribe(reader, "d", "r");
        assertEquals("b9", reader.sent.getFirst().body().get("state").get("x").asText());
        assertTrue(onA.sent.stream().anyMatch(o -> o.type().wireName().equals("delta")
                && o.body().get("value").asText().equals("b9")), "A's subscribers were not told about B's write");
    }
    /** A store that holds submitted writes until the test commits them, on a thread of its own, as a database would. */
    static final class GatedStorage extends FlakyStorage {
        record Held(DocumentWrite write, Rebase rebase, Outcome done) {}

        final java.util.concurrent.LinkedBlockingQueue<Held> held = new java.util.concurrent.LinkedBlockingQueue<>();
        final java.util.Set<String> failMessages = java.util.concurrent.ConcurrentHashMap.newKeySet();

        @Override
        public void submit(DocumentWrite write, Rebase rebase, Outcome done) {
            held.add(new Held(write, rebase, done));
        }

        /** Commits everything held so far, in order, from another thread; returns how many. */
        int release() throws InterruptedException {
            List<Held> batch = new ArrayList<>();
            held.drainTo(batch);
            Thread t = Thread.ofVirtual().start(() -> {
                for (Held h : batch) {
                    if (failMessages.contains(h.write().messageId())) {
                        h.done().committed(null, new StorageException("constraint violated", null));
                        continue;
                    }
                    try {
                        h.done().committed(commit(h.write(), h.rebase()), null);
                    } catch (StorageException e) {
                        h.done().committed(null, e);
                    }
                }
            });
            t.join();
            return batch.size();
        }
    }

    @Test
    void writesFollowEachOtherIntoStorageAndSettleInOrderOnlyOnceCommitted() throws Exception {
        GatedStorage storage = new GatedStorage();
        Documents documents = new Documents(storage, new LocalFanOut(), 100, Duration.ofMillis(50), Long.MAX_VALUE);
        RecordingPeer writer = new RecordingPeer("conn-1");
        List<Exception> failures = new CopyOnWriteArrayList<>();
        for (int i = 1; i <= 5; i++) {
            documents.write(writer, true, "d", set("n", i), Map.of(), List.of(), "client-a", "m" + i, e -> { if (e != null) failures.add(e); });
        }
        assertEquals(5, storage.held.size(), "the document lock must not wait for a commit");
        assertEquals(5, documents.uncommitted());
        assertEquals(List.of(), writer.types(), "nothing is acknowledged or broadcast before it is durable");
        RecordingPeer early = new RecordingPeer("conn-2");
        documents.subscribe(early, "d", "r");
        assertFalse(early.sent.getFirst().body().get("state").has("n"), "a reader saw an uncommitted write");

        storage.failMessages.add("m3"); // the third fails: the writes after it were computed on top of it
        assertEquals(5, storage.release());
        await(() -> documents.uncommitted() == 0);
        assertEquals(1, failures.size());
        assertEquals(List.of("m1", "m2", "m4", "m5"), writer.sent.stream().filter(o -> o.type().wireName().equals("ack"))
                .map(o -> o.body().get("messageId").asText()).toList(), "acks in write order, none for the failed write");
        StoredDocument stored = storage.inner.load("d").orElseThrow();
        assertEquals(4, stored.seq(), "the writes after the failed one were rebased, leaving no gap");
        assertEquals(5, stored.fields().get("n").asInt());

        RecordingPeer late = new RecordingPeer("conn-3");
        documents.subscribe(late, "d", "r2");
        ObjectNode body = (ObjectNode) late.sent.getFirst().body();
        assertEquals(5, body.get("state").get("n").asInt());
        await(() -> early.sent.stream().anyMatch(o -> o.type().wireName().equals("delta") && o.body().get("value").asInt() == 5));

        // With nothing in flight the next write starts from the committed state again: no rebase needed.
        documents.write(writer, true, "d", set("n", 6), Map.of(), List.of(), "client-a", "m6", e -> { if (e != null) failures.add(e); });
        assertEquals(4, storage.held.peek().write().baseSeq());
        storage.release();
        await(() -> documents.uncommitted() == 0);
        assertEquals(5, storage.inner.load("d").orElseThrow().seq());
    }

    private static void await(java.util.function.BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "condition not reached in 5 s");
            Thread.sleep(5);
        }
    }
}
