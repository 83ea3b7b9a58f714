package dev.synckit.server.webhooks;

import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.Await;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Real servers posting to a real receiver that checks every signature: each committed change arrives at least
 * once, a receiver that is down gets everything once it is back, and two instances sharing PostgreSQL and Redis
 * deliver each change from one instance only.
 */
class WebhooksTest {
    private static final String SECRET = "webhook-test-secret";
    private static final Duration WAIT = Duration.ofSeconds(20);

    private static Map<String, String> webhooks(Receiver receiver, String debounceMs) {
        Map<String, String> keys = new HashMap<>();
        keys.put("synckit.webhooks.urls", receiver.url().toString());
        keys.put("synckit.webhooks.secret", SECRET);
        keys.put("synckit.webhooks.debounce-ms", debounceMs);
        keys.put("synckit.webhooks.retry-backoff-ms", "50");
        keys.put("synckit.webhooks.max-backoff-ms", "200");
        keys.put("synckit.webhooks.max-attempts", "1000");
        return keys;
    }

    private static void write(WsClient client, String doc, String id, String field, Object value) {
        client.send(MessageType.DELTA, WsClient.delta(id, doc, field, value));
        client.await("ack", r -> id.equals(r.text("messageId")));
    }

    @Test
    void eachChangeArrivesSignedAndTheFirstWriteIsACreation() throws Exception {
        try (Receiver receiver = new Receiver(SECRET);
             TestServer server = TestServer.start(webhooks(receiver, "0"));
             WsClient client = WsClient.binary(server.wsUri())) {
            long before = System.currentTimeMillis();
            for (int i = 1; i <= 3; i++) {
                write(client, "wh-a", "a" + i, "title", "v" + i);
            }
            write(client, "wh-b", "b1", "done", true);
            Await.waitFor("a 1..3 and b 1", WAIT, () -> receiver.seqCounts("wh-a").keySet().equals(Set.of(1L, 2L, 3L))
                    && receiver.seqCounts("wh-b").containsKey(1L));

            List<Receiver.Seen> a = receiver.of("wh-a");
            assertEquals(List.of("document.created", "document.changed", "document.changed"),
                    a.stream().map(Receiver.Seen::event).toList(), "in commit order, only the first is a creation");
            assertEquals("document.created", receiver.of("wh-b").getFirst().event());
            for (Receiver.Seen s : receiver.seen) {
                assertEquals(s.deliveryId(), s.deliveryHeader());
                assertEquals(s.event(), s.eventHeader());
                long updatedAt = s.body().get("updatedAt").asLong();
                assertTrue(updatedAt >= before && updatedAt <= System.currentTimeMillis(), s.body().toString());
            }
            assertEquals(receiver.seen.size(), receiver.seen.stream().map(Receiver.Seen::deliveryId).distinct().count(),
                    "one id per delivery");
            assertEquals(0, receiver.badSignatures.get());
        }
    }

    @Test
    void httpWritesAndDeletesAreReportedToo() throws Exception {
        try (Receiver receiver = new Receiver(SECRET);
             TestServer server = TestServer.start(webhooks(receiver, "0"));
             java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient()) {
            for (String method : List.of("PATCH", "DELETE")) {
                var request = java.net.http.HttpRequest.newBuilder(server.httpUri("/documents/wh-http"))
                        .header("Content-Type", "application/json")
                        .method(method, method.equals("PATCH")
                                ? java.net.http.HttpRequest.BodyPublishers.ofString("{\"fields\":{\"title\":\"from a backend\"}}")
                                : java.net.http.HttpRequest.BodyPublishers.noBody()).build();
                assertEquals(200, http.send(request, java.net.http.HttpResponse.BodyHandlers.ofString()).statusCode());
            }
            Await.waitFor("created, changed (the delete's write) and deleted", WAIT, () -> receiver.of("wh-http").size() >= 3);
            assertEquals(List.of("document.created", "document.changed", "document.deleted"),
                    receiver.of("wh-http").stream().map(Receiver.Seen::event).toList());
            assertEquals(0, receiver.badSignatures.get());
        }
    }

    @Test
    void changesWithinTheDebounceWindowCoalesceIntoTheLatestSeq() throws Exception {
        try (Receiver receiver = new Receiver(SECRET);
             TestServer server = TestServer.start(webhooks(receiver, "500"));
             WsClient client = WsClient.binary(server.wsUri())) {
            for (int i = 1; i <= 10; i++) {
                client.send(MessageType.DELTA, WsClient.delta("m" + i, "wh-burst", "n", i));
            }
            client.await("ack", r -> "m10".equals(r.text("messageId")));
            Await.waitFor("seq 10", WAIT, () -> receiver.seqCounts("wh-burst").containsKey(10L));
            List<Receiver.Seen> seen = receiver.of("wh-burst");
            assertTrue(seen.size() < 10, "coalesced: " + seen.size() + " deliveries for 10 writes");
            assertEquals("document.created", seen.getFirst().event(), "the window that saw the first write reports it");
        }
    }

    @Test
    void aReceiverThatIsDownGetsEveryChangeOnceItIsBack() throws Exception {
        try (Receiver receiver = new Receiver(SECRET);
             TestServer server = TestServer.start(webhooks(receiver, "0"));
             WsClient client = WsClient.binary(server.wsUri())) {
            receiver.status.set(503);
            for (int i = 1; i <= 5; i++) {
                write(client, "wh-down-" + i, "d" + i, "f", i);
            }
            Await.waitFor("retries against the 503s", WAIT, () -> receiver.refused.get() >= 3);
            receiver.stop(); // and now not even listening: connections refused
            write(client, "wh-down-6", "d6", "f", 6);
            Thread.sleep(500);
            assertEquals(List.of(), receiver.seen);
            receiver.status.set(204);
            receiver.restart();

            Await.waitFor("all six documents", WAIT, () -> LongStream.rangeClosed(1, 6)
                    .allMatch(i -> receiver.seqCounts("wh-down-" + i).containsKey(1L)));
            Webhooks.Stats stats = server.app().webhooks().orElseThrow().stats();
            assertTrue(stats.failedAttempts() >= 3, stats.toString());
            assertEquals(0, stats.dropped(), stats.toString());
            assertEquals(0, stats.givenUp(), stats.toString());
            assertEquals(0, receiver.badSignatures.get());
        }
    }

    private static long storedSeq(TestDatabase db, String doc) throws Exception {
        try (Connection c = db.connect(); PreparedStatement s = c.prepareStatement("SELECT seq FROM documents WHERE id = ?")) {
            s.setString(1, doc);
            try (ResultSet rs = s.executeQuery()) {
                return rs.next() ? rs.getLong(1) : 0;
            }
        }
    }

    /** With ownership the owner commits (and announces) every write; without, each instance its own clients'. */
    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void twoInstancesDeliverEachCommittedChangeFromOneInstance(boolean ownership) throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "wh-cluster";
        try (Receiver receiver = new Receiver(SECRET); TestDatabase db = TestDatabase.create()) {
            Map<String, String> node = webhooks(receiver, "0");
            node.putAll(Map.of("synckit.storage.url", db.url(), "synckit.redis.url", TestRedis.url(),
                    "synckit.redis.channel-prefix", prefix, "synckit.redis.timeout-ms", "1000",
                    "synckit.cluster.lease-ms", "1500", "synckit.cluster.ownership", Boolean.toString(ownership)));
            try (TestServer one = TestServer.start(node);
                 TestServer two = TestServer.start(node);
                 WsClient a = WsClient.binary(one.wsUri());
                 WsClient b = WsClient.binary(two.wsUri())) {
                // Both subscribed: each instance also applies the other's writes (from Redis), which must not fire.
                for (WsClient c : List.of(a, b)) {
                    c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
                    c.await("sync_response", r -> doc.equals(r.text("documentId")));
                }
                write(a, doc, "a0", "f", "first");
                int n = 15;
                for (int i = 0; i < n; i++) {
                    a.send(MessageType.DELTA, WsClient.delta("a" + (i + 1), doc, "f" + (i % 3), "a" + i));
                    b.send(MessageType.DELTA, WsClient.delta("b" + i, doc, "f" + (i % 3), "b" + i));
                }
                for (int i = 0; i < n; i++) {
                    String ai = "a" + (i + 1);
                    String bi = "b" + i;
                    a.await("ack", r -> ai.equals(r.text("messageId")));
                    b.await("ack", r -> bi.equals(r.text("messageId")));
                }
                long last = storedSeq(db, doc);
                assertEquals(2 * n + 1, last, "one seq per write");
                Set<Long> all = LongStream.rangeClosed(1, last).boxed().collect(Collectors.toSet());
                try {
                    Await.waitFor("every seq", WAIT, () -> receiver.seqCounts(doc).keySet().containsAll(all));
                } catch (AssertionError e) {
                    throw new AssertionError(e.getMessage() + "; seqs seen " + receiver.seqCounts(doc) + ", stats "
                            + one.app().webhooks().orElseThrow().stats() + " / " + two.app().webhooks().orElseThrow().stats(), e);
                }
                Thread.sleep(500); // a second sender would be about as quick as the first

                Map<Long, Long> counts = receiver.seqCounts(doc);
                assertEquals(all, counts.keySet());
                assertEquals(Map.of(), counts.entrySet().stream().filter(e -> e.getValue() > 1)
                        .collect(Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue)), "seqs delivered twice");
                assertEquals(List.of(1L), receiver.of(doc).stream().filter(s -> s.event().equals("document.created"))
                        .map(Receiver.Seen::seq).toList());
                long delivered = one.app().webhooks().orElseThrow().stats().delivered()
                        + two.app().webhooks().orElseThrow().stats().delivered();
                assertEquals(last, delivered, "the instances together sent each change once");
                assertEquals(0, receiver.refused.get());
                assertEquals(0, receiver.badSignatures.get());
            }
        }
    }
}
