package dev.synckit.server.webhooks;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.config.Settings;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.testing.Await;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Signing, debounce, the queue bound and retries, without a network (a fake clock where time matters). */
class WebhookQueueTest {
    private static final URI URL = URI.create("http://receiver.invalid/hook");

    private static Settings.Webhooks settings(Duration debounce, int maxQueued, int maxAttempts, Set<String> events) {
        return new Settings.Webhooks(List.of(URL), events, debounce, "s3cret", maxQueued, maxAttempts,
                Duration.ofMillis(1), Duration.ofMillis(4), Duration.ofSeconds(1));
    }

    private static Settings.Webhooks settings(Duration debounce, int maxQueued) {
        return settings(debounce, maxQueued, 3, Settings.Webhooks.EVENTS);
    }

    /** A transport that must not be called: these tests never start the delivery loops. */
    private static final Webhooks.Transport NONE = (url, headers, body, timeout) -> {
        throw new AssertionError("no delivery expected");
    };

    @Test
    void signatureIsTheHexHmacSha256OfTheBody() {
        // RFC 4231-style known answer (the classic "quick brown fox" vector).
        assertEquals("sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
                Webhooks.sign("key".getBytes(StandardCharsets.UTF_8),
                        "The quick brown fox jumps over the lazy dog".getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void eventsOfOneDocumentWithinTheWindowBecomeOneDeliveryWithTheLatestSeqAndKeepCreated() {
        AtomicLong now = new AtomicLong();
        Webhooks w = new Webhooks(settings(Duration.ofMillis(500), 100), NONE, now::get);
        w.changed("a", 1, 1000, true);
        now.addAndGet(100_000_000);
        w.changed("a", 2, 1001, false);
        w.changed("b", 7, 1002, false);
        w.changed("a", 3, 1003, false);
        now.addAndGet(300_000_000); // 400 ms after the first event of a: still inside the window
        w.release(false, Integer.MAX_VALUE);
        assertEquals(List.of(), w.queued(0));
        assertEquals(2, w.stats().queued(), "two documents debouncing");

        now.addAndGet(100_000_000); // 500 ms: a's window ends; b's (opened at 100 ms) has 100 ms to go
        w.release(false, Integer.MAX_VALUE);
        List<Webhooks.Delivery> queued = w.queued(0);
        assertEquals(1, queued.size(), "only a's window has ended: " + queued);
        Webhooks.Delivery a = queued.getFirst();
        assertEquals("a", a.documentId());
        assertEquals(3, a.seq());
        assertEquals(1003, a.updatedAt());
        assertEquals(Webhooks.Kind.CREATED, a.kind(), "created inside the window is kept");

        now.addAndGet(100_000_000);
        w.release(false, Integer.MAX_VALUE);
        assertEquals(List.of("a", "b"), w.queued(0).stream().map(Webhooks.Delivery::documentId).toList());

        // A new window for a after the old one was released: plain change, a new delivery id.
        w.changed("a", 4, 1004, false);
        now.addAndGet(600_000_000);
        w.release(false, Integer.MAX_VALUE);
        Webhooks.Delivery again = w.queued(0).getLast();
        assertEquals(Webhooks.Kind.CHANGED, again.kind());
        assertEquals(4, again.seq());
        assertTrue(!again.id().equals(a.id()));
    }

    @Test
    void aDeletionReplacesTheWindowsChangesAndAWriteAfterItReplacesTheDeletion() {
        assertEquals(Webhooks.Kind.DELETED, Webhooks.merged(Webhooks.Kind.CREATED, Webhooks.Kind.DELETED));
        assertEquals(Webhooks.Kind.CREATED, Webhooks.merged(Webhooks.Kind.DELETED, Webhooks.Kind.CREATED));
        assertEquals(Webhooks.Kind.CREATED, Webhooks.merged(Webhooks.Kind.CREATED, Webhooks.Kind.CHANGED));
        assertEquals(Webhooks.Kind.CHANGED, Webhooks.merged(Webhooks.Kind.CHANGED, Webhooks.Kind.CHANGED));
    }

    @Test
    void withoutADebounceEveryWriteIsItsOwnDeliveryInCommitOrder() {
        Webhooks w = new Webhooks(settings(Duration.ZERO, 100), NONE, new AtomicLong()::get);
        w.changed("a", 1, 1, true);
        w.changed("a", 2, 2, false);
        w.changed("a", 3, 3, false);
        List<Webhooks.Delivery> queued = w.queued(0);
        assertEquals(List.of(1L, 2L, 3L), queued.stream().map(Webhooks.Delivery::seq).toList(), "queued at once, none merged");
        assertEquals(List.of(Webhooks.Kind.CREATED, Webhooks.Kind.CHANGED, Webhooks.Kind.CHANGED),
                queued.stream().map(Webhooks.Delivery::kind).toList());
    }

    @Test
    void aFullQueueDropsItsOldestDeliveries() {
        AtomicLong now = new AtomicLong();
        Webhooks w = new Webhooks(settings(Duration.ZERO, 3), NONE, now::get);
        for (int i = 1; i <= 5; i++) {
            w.changed("d" + i, i, i, false);
            w.release(false, Integer.MAX_VALUE);
        }
        assertEquals(List.of("d3", "d4", "d5"), w.queued(0).stream().map(Webhooks.Delivery::documentId).toList());
        assertEquals(2, w.stats().dropped());
    }

    @Test
    void tooManyDocumentsDebouncingSendsTheOldestWindowEarlyInsteadOfLosingIt() {
        AtomicLong now = new AtomicLong();
        Webhooks w = new Webhooks(settings(Duration.ofHours(1), 2), NONE, now::get);
        w.changed("x", 1, 1, false);
        w.changed("y", 1, 1, false);
        assertEquals(List.of(), w.queued(0));
        w.changed("z", 1, 1, false);
        assertEquals(List.of("x"), w.queued(0).stream().map(Webhooks.Delivery::documentId).toList());
        assertEquals(0, w.stats().dropped());
        assertEquals(3, w.stats().queued());
    }

    @Test
    void onlyTheConfiguredEventsAreDeliveredAndACreationCountsAsAChange() {
        AtomicLong now = new AtomicLong();
        Webhooks w = new Webhooks(settings(Duration.ZERO, 10, 3, Set.of("changed")), NONE, now::get);
        w.changed("new", 1, 1, true);
        w.deleted("gone");
        w.release(false, Integer.MAX_VALUE);
        List<Webhooks.Delivery> queued = w.queued(0);
        assertEquals(1, queued.size(), queued.toString());
        assertEquals(Webhooks.Kind.CHANGED, queued.getFirst().kind());

        Webhooks deletes = new Webhooks(settings(Duration.ZERO, 10, 3, Set.of("deleted")), NONE, now::get);
        deletes.changed("new", 1, 1, true);
        deletes.deleted("gone");
        deletes.release(false, Integer.MAX_VALUE);
        assertEquals(List.of(Webhooks.Kind.DELETED), deletes.queued(0).stream().map(Webhooks.Delivery::kind).toList());
        JsonNode body = parse(Webhooks.body(deletes.queued(0).getFirst(), 5));
        assertEquals("document.deleted", body.get("event").asText());
        assertTrue(!body.has("seq"), "a deletion has no sequence: " + body);
    }

    @Test
    void backoffDoublesUpToTheCapWithJitterInTheUpperHalf() {
        Duration first = Duration.ofMillis(100);
        Duration max = Duration.ofMillis(1000);
        assertEquals(50_000_000, Webhooks.backoffNanos(1, first, max, 0));
        assertEquals(100_000_000, Webhooks.backoffNanos(1, first, max, 0.999999999), 1);
        assertEquals(300_000_000, Webhooks.backoffNanos(3, first, max, 0.5), "400 ms nominal: 200 fixed + half of the random 200");
        assertEquals(500_000_000, Webhooks.backoffNanos(5, first, max, 0));
        assertEquals(500_000_000, Webhooks.backoffNanos(200, first, max, 0), "no overflow after many failures");
    }

    @Test
    void failedAttemptsAreRetriedWithTheSameDeliveryIdAndAFreshSignatureUntilA2xx() {
        List<Map<String, String>> attempts = new CopyOnWriteArrayList<>();
        List<byte[]> bodies = new CopyOnWriteArrayList<>();
        AtomicInteger calls = new AtomicInteger();
        Webhooks.Transport flaky = (url, headers, body, timeout) -> {
            attempts.add(headers);
            bodies.add(body);
            return switch (calls.incrementAndGet()) {
                case 1 -> throw new ConnectException("Connection refused");
                case 2 -> 503;
                default -> 204;
            };
        };
        Webhooks w = new Webhooks(settings(Duration.ZERO, 10, 5, Settings.Webhooks.EVENTS), flaky, System::nanoTime).start();
        try {
            w.changed("doc", 4, 99, false);
            Await.waitFor("a delivery", Duration.ofSeconds(5), () -> w.stats().delivered() == 1);
            assertEquals(3, attempts.size());
            assertEquals(2, w.stats().failedAttempts());
            String id = attempts.getFirst().get("X-SyncKit-Delivery");
            for (int i = 0; i < 3; i++) {
                Map<String, String> h = attempts.get(i);
                assertEquals(id, h.get("X-SyncKit-Delivery"), "one id across retries");
                assertEquals(Integer.toString(i + 1), h.get("X-SyncKit-Attempt"));
                assertEquals("document.changed", h.get("X-SyncKit-Event"));
                assertEquals(Webhooks.sign("s3cret".getBytes(StandardCharsets.UTF_8), bodies.get(i)), h.get("X-SyncKit-Signature"));
                JsonNode body = parse(bodies.get(i));
                assertEquals(id, body.get("deliveryId").asText());
                assertEquals(4, body.get("seq").asLong());
                assertEquals(h.get("X-SyncKit-Timestamp"), body.get("timestamp").asText());
            }
        } finally {
            w.close();
        }
    }

    @Test
    void aDeliveryIsGivenUpAfterItsLastAttemptAndTheNextOneStillGoesOut() {
        AtomicInteger calls = new AtomicInteger();
        Webhooks.Transport down = (url, headers, body, timeout) -> {
            if (calls.incrementAndGet() <= 3) {
                throw new IOException("down");
            }
            return 200;
        };
        Webhooks w = new Webhooks(settings(Duration.ZERO, 10, 3, Settings.Webhooks.EVENTS), down, System::nanoTime).start();
        try {
            w.changed("first", 1, 1, false);
            Await.waitFor("the first given up", Duration.ofSeconds(5), () -> w.stats().givenUp() == 1);
            w.changed("second", 1, 1, false);
            Await.waitFor("the second delivered", Duration.ofSeconds(5), () -> w.stats().delivered() == 1);
            assertEquals(4, calls.get());
        } finally {
            w.close();
        }
    }

    @Test
    void closeSendsWhatIsStillDebouncing() {
        AtomicInteger delivered = new AtomicInteger();
        Webhooks w = new Webhooks(settings(Duration.ofHours(1), 10), (url, headers, body, timeout) -> {
            delivered.incrementAndGet();
            return 200;
        }, System::nanoTime).start();
        w.changed("a", 1, 1, false);
        w.changed("b", 1, 1, false);
        w.close();
        assertEquals(2, delivered.get());
        assertEquals(0, w.stats().dropped());
    }

    private static JsonNode parse(byte[] body) {
        try {
            return Json.MAPPER.readTree(body);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
