package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.pubsub.FanOut;
import org.junit.jupiter.api.Test;

import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Presence rooms come and go while clients join and leave them. A join racing the removal of an empty
 * room must neither orphan the subscriber (it would hear nothing more) nor leak its listen on the fan-out.
 */
class AwarenessRaceTest {

    /** Counts what is listened to, which is what keeps Redis channels subscribed. */
    private static final class CountingFanOut implements FanOut {
        final ConcurrentHashMap<String, AtomicInteger> listens = new ConcurrentHashMap<>();

        @Override
        public void start(Remote remote) {
        }

        @Override
        public void publish(dev.synckit.server.storage.DocumentWrite write, List<ObjectNode> typeOps) {
        }

        @Override
        public void publishPresence(String documentId, String clientId, JsonNode state, long clock) {
        }

        @Override
        public List<Presence> presence(String documentId) {
            return List.of();
        }

        @Override
        public String describe() {
            return "counting";
        }

        @Override
        public void close() {
        }

        @Override
        public void listen(String documentId) {
            listens.computeIfAbsent(documentId, k -> new AtomicInteger()).incrementAndGet();
        }

        @Override
        public void unlisten(String documentId) {
            listens.computeIfAbsent(documentId, k -> new AtomicInteger()).decrementAndGet();
        }
    }

    @Test
    void joinsRacingTheRemovalOfAnEmptyRoomAreNeitherOrphanedNorLeaked() throws Exception {
        CountingFanOut fanOut = new CountingFanOut();
        Awareness awareness = new Awareness(id -> Set.of(), fanOut, Duration.ofMinutes(1), Clock.systemUTC());
        String doc = "raced";
        int rounds = 20_000;
        AtomicBoolean failed = new AtomicBoolean();
        CountDownLatch start = new CountDownLatch(1);
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            int thread = t;
            threads.add(Thread.ofPlatform().start(() -> {
                try {
                    start.await();
                    for (int i = 0; i < rounds && !failed.get(); i++) {
                        DocumentsTest.RecordingPeer c = new DocumentsTest.RecordingPeer("c-" + thread + "-" + i);
                        if (i % 2 == 0) {
                            // A subscriber that leaves again: its leaving empties the room.
                            awareness.subscribe(c, doc);
                            awareness.disconnected(c);
                        } else {
                            // A publisher whose entry comes and goes: removing it empties the room too.
                            JsonNode state = Json.object().put("n", i);
                            awareness.update(c, doc, c.id, state, 1);
                            awareness.update(c, doc, c.id, null, 2);
                            awareness.disconnected(c);
                        }
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));
        }
        // One client stays joined throughout; it must still hear updates at the end.
        DocumentsTest.RecordingPeer stayer = new DocumentsTest.RecordingPeer("stayer");
        start.countDown();
        for (int i = 0; i < 2000; i++) {
            awareness.subscribe(stayer, doc);
            awareness.disconnected(stayer);
        }
        awareness.subscribe(stayer, doc);
        for (Thread t : threads) {
            t.join();
        }
        assertEquals(1, fanOut.listens.get(doc).get(), "exactly the stayer's listen is held");
        stayer.sent.clear();
        DocumentsTest.RecordingPeer last = new DocumentsTest.RecordingPeer("last");
        awareness.update(last, doc, "last", Json.object().put("hi", true), 1);
        assertTrue(stayer.sent.stream().anyMatch(m -> "last".equals(m.body().path("clientId").asText())),
                "the joined client still hears updates");
        awareness.disconnected(last);
        awareness.disconnected(stayer);
        assertEquals(0, fanOut.listens.get(doc).get(), "no listen leaked");
        assertEquals(0, awareness.documentCount(), "no room left behind");
    }
}
