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
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.storage.StorageException;
import dev.synckit.server.storage.StoredDelta;
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
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The write path and clock rules of {@link Documents}, with an in-process peer. */
class DocumentsTest {
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
    static final class FlakyStorage implements StorageAdapter {
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
        public Cleanup cleanup(Duration deltaRetention, int keep, Duration sessionRetention) {
            return inner.cleanup(deltaRetention, keep, sessionRetention);
        }

        @Override
        public List<StoredDelta> deltasSince(String documentId, long afterSeq, int limit) {
            return inner.deltasSince(documentId, afterSeq, limit);
        }

        @Override
        public List<DocumentSummary> list(int limit, int offset) {
            return inner.list(limit, offset);
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
        Documents documents = new Documents(storage, new LocalFanOut(), 100, Duration.ofMillis(50));
        RecordingPeer writer = new RecordingPeer("conn-1");
        documents.write(writer, true, "d", set("title", "kept"), Map.of(), List.of(), null, "m1");
        assertEquals(List.of("ack", "delta"), writer.types());

        storage.failing = true;
        writer.sent.clear();
        assertThrows(Documents.WriteFailed.class,
                () -> documents.write(writer, true, "d", set("title", "lost"), Map.of(), List.of(), null, "m2"));
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
        Documents documents = new Documents(new MemoryStorage(100), new LocalFanOut(), 100, Duration.ofMillis(50));
        RecordingPeer a = new RecordingPeer("conn-1");
        RecordingPeer b = new RecordingPeer("conn-2");
        documents.write(a, true, "d", set("f", "from-a"), Map.of("client-z", 100L), List.of(), null, "1");
        documents.write(b, true, "d", set("f", "from-b"), Map.of(), List.of(), null, "2");
        documents.write(b, true, "d", List.of(new FieldChange("g", Json.object().put("__deleted", true))), Map.of(), List.of(), null, "3");

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
        Documents documents = new Documents(storage, new LocalFanOut(), 2, Duration.ofMillis(50));
        RecordingPeer writer = new RecordingPeer("conn-1");
        for (int i = 0; i < 5; i++) {
            documents.write(writer, true, "d" + i, set("v", i), Map.of(), List.of(), null, null);
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
        Documents documents = new Documents(storage, new LocalFanOut(), 100, Duration.ofMillis(50));
        RecordingPeer writer = new RecordingPeer("conn-1");
        documents.write(writer, true, "d", set("n", 1), Map.of(), List.of(), "client-a", "msg-1");
        documents.write(writer, true, "d", set("n", 2), Map.of(), List.of(), "client-a", "msg-1");
        assertEquals(List.of("ack", "delta", "ack"), writer.types());
        assertEquals(1, storage.load("d").orElseThrow().fields().get("n").asInt());
        assertEquals(1, storage.load("d").orElseThrow().seq());
        // The same message id from another client is a different write.
        documents.write(writer, true, "d", set("n", 3), Map.of(), List.of(), "client-b", "msg-1");
        assertEquals(3, storage.load("d").orElseThrow().fields().get("n").asInt());
    }

    @Test
    void twoInstancesOnOneStoreStayConsistent() throws Exception {
        MemoryStorage shared = new MemoryStorage(100);
        Documents a = new Documents(shared, new LocalFanOut(), 100, Duration.ofMillis(50));
        Documents b = new Documents(shared, new LocalFanOut(), 100, Duration.ofMillis(50));
        RecordingPeer onA = new RecordingPeer("conn-1");
        RecordingPeer onB = new RecordingPeer("conn-1");
        for (int i = 0; i < 10; i++) {
            a.write(onA, true, "d", set("x", "a" + i), Map.of(), List.of(), null, "a" + i);
            b.write(onB, true, "d", set("x", "b" + i), Map.of(), List.of(), null, "b" + i);
        }
        assertEquals(20, shared.currentSeq("d"));
        // A's subscriber learned B's last value when A refreshed on its next write or read.
        RecordingPeer reader = new RecordingPeer("conn-9");
        a.subscribe(reader, "d", "r");
        assertEquals("b9", reader.sent.getFirst().body().get("state").get("x").asText());
        assertTrue(onA.sent.stream().anyMatch(o -> o.type().wireName().equals("delta")
                && o.body().get("value").asText().equals("b9")), "A's subscribers were not told about B's write");
    }
}
