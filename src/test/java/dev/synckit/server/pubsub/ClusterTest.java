package dev.synckit.server.pubsub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TcpProxy;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Several server instances in one JVM sharing a real PostgreSQL and Redis. */
class ClusterTest {

    private static Map<String, String> node(TestDatabase db, String redisUrl, String prefix) {
        return Map.of("synckit.storage.url", db.url(), "synckit.redis.url", redisUrl,
                "synckit.redis.channel-prefix", prefix, "synckit.redis.timeout-ms", "1000");
    }

    private static WsClient subscribed(TestServer server, String doc) {
        WsClient c = WsClient.binary(server.wsUri());
        c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
        c.await("sync_response", r -> doc.equals(r.text("documentId")));
        return c;
    }

    private static JsonNode state(WsClient c, String doc, String requestId) {
        c.send(MessageType.SYNC_REQUEST, Json.object().put("id", requestId).put("documentId", doc));
        return c.await("sync_response", r -> requestId.equals(r.text("requestId"))).payload().get("state");
    }

    /** Polls until the supplier returns true (subscriptions to Redis are set up in the background). */
    private static void eventually(String what, Supplier<Boolean> condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        while (System.nanoTime() < deadline) {
            if (condition.get()) {
                return;
            }
            Thread.sleep(100);
        }
        throw new AssertionError("timed out waiting for " + what);
    }

    @Test
    void aWriteOnOneInstanceReachesSubscribersOnTheOthers() throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "cluster-doc";
        try (TestDatabase db = TestDatabase.create();
             TestServer one = TestServer.start(node(db, TestRedis.url(), prefix));
             TestServer two = TestServer.start(node(db, TestRedis.url(), prefix));
             TestServer three = TestServer.start(node(db, TestRedis.url(), prefix));
             WsClient writer = subscribed(one, doc);
             WsClient on2 = subscribed(two, doc);
             WsClient on3 = subscribed(three, doc)) {
            Thread.sleep(500); // let the Redis subscriptions settle
            writer.send(MessageType.DELTA, WsClient.delta("w1", doc, "title", "hello from 1"));
            writer.await("ack");
            for (WsClient c : List.of(on2, on3)) {
                WsClient.Received d = c.await("delta", r -> "title".equals(r.text("field")));
                assertEquals("hello from 1", d.text("value"));
            }
        }
    }

    @Test
    void concurrentWritersOnEveryInstanceConvergeInSequenceOrder() throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "converge-doc";
        int writes = 40;
        try (TestDatabase db = TestDatabase.create()) {
            List<TestServer> servers = new ArrayList<>();
            List<WsClient> clients = new ArrayList<>();
            try {
                for (int i = 0; i < 3; i++) {
                    servers.add(TestServer.start(node(db, TestRedis.url(), prefix)));
                    clients.add(subscribed(servers.get(i), doc));
                }
                Thread.sleep(500);
                List<Thread> threads = new ArrayList<>();
                for (int n = 0; n < 3; n++) {
                    WsClient c = clients.get(n);
                    String who = "n" + n;
                    threads.add(Thread.ofVirtual().start(() -> {
                        for (int i = 0; i < writes; i++) {
                            c.send(MessageType.DELTA, WsClient.delta(who + "-" + i, doc, "f" + (i % 4), who + "-" + i));
                        }
                    }));
                }
                for (Thread t : threads) {
                    t.join();
                }
                for (int n = 0; n < 3; n++) {
                    for (int i = 0; i < writes; i++) {
                        String id = "n" + n + "-" + i;
                        clients.get(n).await("ack", r -> id.equals(r.text("messageId")));
                    }
                }
                Map<String, List<String>> order = new HashMap<>();
                JsonNode stored;
                try (Connection sql = db.connect(); Statement s = sql.createStatement()) {
                    try (ResultSet rs = s.executeQuery("SELECT field_path, value #>> '{}' FROM deltas WHERE document_id = '"
                            + doc + "' ORDER BY seq")) {
                        while (rs.next()) {
                            order.computeIfAbsent(rs.getString(1), k -> new ArrayList<>()).add(rs.getString(2));
                        }
                    }
                    try (ResultSet rs = s.executeQuery("SELECT state->'fields' FROM documents WHERE id = '" + doc + "'")) {
                        rs.next();
                        stored = Json.MAPPER.readTree(rs.getString(1));
                    }
                }
                // Every client ends with exactly the stored state, and saw each field's values in sequence order.
                for (int n = 0; n < 3; n++) {
                    WsClient c = clients.get(n);
                    for (int f = 0; f < 4; f++) {
                        String field = "f" + f;
                        String last = stored.get(field).asText();
                        eventually("client " + n + " to see " + field + "=" + last, () -> c.pending().stream()
                                .anyMatch(r -> r.type().equals("delta") && field.equals(r.text("field")) && last.equals(r.text("value"))));
                    }
                    Map<String, List<String>> seen = new HashMap<>();
                    for (WsClient.Received r : c.pending()) {
                        if (r.type().equals("delta")) {
                            seen.computeIfAbsent(r.text("field"), k -> new ArrayList<>()).add(r.text("value"));
                        }
                    }
                    for (var e : seen.entrySet()) {
                        assertSubsequence(order.get(e.getKey()), e.getValue(), "client " + n + " field " + e.getKey());
                    }
                    assertEquals(stored, state(c, doc, "final-" + n), "instance " + n + " disagrees with PostgreSQL");
                }
            } finally {
                clients.forEach(WsClient::close);
                servers.forEach(TestServer::close);
            }
        }
    }

    /** {@code seen} must appear in {@code order} in the same relative order (values may be skipped, not reordered). */
    private static void assertSubsequence(List<String> order, List<String> seen, String what) {
        int at = 0;
        for (String v : seen) {
            int found = order.subList(at, order.size()).indexOf(v);
            assertTrue(found >= 0, what + ": saw " + v + " out of sequence order; saw " + seen + ", order " + order);
            at += found; // the same value may be re-sent after a catch-up, so stay at it
        }
    }

    @Test
    void afterARedisOutageEveryClientConvergesWithNoAckedWriteMissing() throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "outage-doc";
        URI redis = TestRedis.address();
        try (TestDatabase db = TestDatabase.create(); TcpProxy proxy = new TcpProxy(redis.getHost(), redis.getPort())) {
            String viaProxy = "redis://127.0.0.1:" + proxy.port();
            try (TestServer one = TestServer.start(node(db, viaProxy, prefix));
                 TestServer two = TestServer.start(node(db, viaProxy, prefix));
                 WsClient c1 = subscribed(one, doc);
                 WsClient c2 = subscribed(two, doc)) {
                Thread.sleep(500);
                c1.send(MessageType.DELTA, WsClient.delta("before", doc, "k0", "v0"));
                c1.await("ack");
                c2.await("delta", r -> "k0".equals(r.text("field")));

                proxy.cut();
                List<String> acked = new ArrayList<>();
                for (int i = 0; i < 20; i++) {
                    WsClient c = i % 2 == 0 ? c1 : c2;
                    String id = "during-" + i;
                    c.send(MessageType.DELTA, WsClient.delta(id, doc, "k" + (i + 1), "v" + (i + 1)));
                    c.await("ack", r -> id.equals(r.text("messageId")));
                    acked.add("k" + (i + 1));
                }
                proxy.restore();
                for (WsClient c : List.of(c1, c2)) {
                    for (String field : acked) {
                        eventually(field + " on every client", () -> c.pending().stream()
                                .anyMatch(r -> r.type().equals("delta") && field.equals(r.text("field"))));
                    }
                }
                JsonNode s1 = state(c1, doc, "s1");
                JsonNode s2 = state(c2, doc, "s2");
                assertEquals(s1, s2);
                assertEquals(21, s1.size());
            }
        }
    }

    @Test
    void anInstanceJoiningLaterServesTheFullStateAndPresenceCrossesInstances() throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "late-doc";
        try (TestDatabase db = TestDatabase.create();
             TestServer one = TestServer.start(node(db, TestRedis.url(), prefix));
             TestServer two = TestServer.start(node(db, TestRedis.url(), prefix))) {
            try (WsClient writer = subscribed(one, doc)) {
                for (int i = 0; i < 10; i++) {
                    writer.send(MessageType.DELTA, WsClient.delta("w" + i, doc, "f" + i, i));
                }
                for (int i = 0; i < 10; i++) {
                    String id = "w" + i;
                    writer.await("ack", r -> id.equals(r.text("messageId")));
                }
            }
            try (WsClient late = WsClient.binary(two.wsUri())) {
                late.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
                JsonNode state = late.await("sync_response").payload().get("state");
                assertEquals(10, state.size());
                assertEquals(9, state.get("f9").asInt());
            }

            try (WsClient owner = WsClient.binary(one.wsUri())) {
                owner.send(MessageType.AWARENESS_SUBSCRIBE, Json.object().put("documentId", doc));
                owner.await("awareness_state");
                ObjectNode update = Json.object().put("documentId", doc).put("clientId", "client-owner").put("clock", 1);
                update.putObject("state").put("name", "Owner");
                owner.send(MessageType.AWARENESS_UPDATE, update);
                owner.await("awareness_update");
                Thread.sleep(300); // the presence entry travels through Redis
                try (WsClient viewer = WsClient.binary(two.wsUri())) {
                    viewer.send(MessageType.AWARENESS_SUBSCRIBE, Json.object().put("documentId", doc));
                    JsonNode states = viewer.await("awareness_state").payload().get("states");
                    Thread.sleep(500); // instance 2 subscribes to the presence topic in the background
                    assertEquals(1, states.size(), "presence set on instance 1 is missing on instance 2: " + states);
                    assertEquals("Owner", states.get(0).get("state").get("name").asText());
                    owner.close();
                    WsClient.Received leave = viewer.await("awareness_update",
                            r -> "client-owner".equals(r.text("clientId")) && r.payload().get("state").isNull());
                    assertTrue(leave.payload().get("clock").asLong() > 0);
                }
            }
        }
    }
}
