package dev.synckit.server.cluster;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.meters.Meters;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Instances in one JVM on a real PostgreSQL and Redis: one owner per document commits everybody's writes,
 * the others forward to it; a draining owner hands its documents over without a client seeing an error.
 */
class OwnershipTest {

    private static Map<String, String> node(TestDatabase db, String prefix) {
        return Map.of("synckit.storage.url", db.url(), "synckit.redis.url", TestRedis.url(),
                "synckit.redis.channel-prefix", prefix, "synckit.redis.timeout-ms", "1000",
                "synckit.cluster.lease-ms", "1500");
    }

    private static WsClient subscribed(TestServer server, String doc) {
        WsClient c = WsClient.binary(server.wsUri());
        c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
        c.await("sync_response", r -> doc.equals(r.text("documentId")));
        return c;
    }

    private static void eventually(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        while (System.nanoTime() < deadline) {
            if (condition.getAsBoolean()) {
                return;
            }
            Thread.sleep(50);
        }
        throw new AssertionError("timed out waiting for " + what);
    }

    private static int owned(TestServer s) {
        return s.app().writes().status().ownedDocuments();
    }

    private static long epoch(TestDatabase db, String doc) throws Exception {
        try (Connection c = db.connect(); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT epoch FROM synckit_owner_epochs WHERE document_id = '" + doc + "'")) {
            return rs.next() ? rs.getLong(1) : 0;
        }
    }

    @Test
    void oneInstanceOwnsADocumentAndTheOthersForwardToIt() throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "owned-doc";
        try (TestDatabase db = TestDatabase.create();
             TestServer one = TestServer.start(node(db, prefix));
             TestServer two = TestServer.start(node(db, prefix));
             WsClient a = subscribed(one, doc);
             WsClient b = subscribed(two, doc)) {
            a.send(MessageType.DELTA, WsClient.delta("a0", doc, "first", "from-a"));
            a.await("ack", r -> "a0".equals(r.text("messageId")));
            assertEquals(1, owned(one), "the first writer's instance took the document");
            assertEquals(0, owned(two));
            long claimed = epoch(db, doc);
            assertTrue(claimed > 0, "taking the document claimed it in storage");

            for (int i = 0; i < 30; i++) {
                a.send(MessageType.DELTA, WsClient.delta("a" + (i + 1), doc, "f" + (i % 3), "a" + i));
                b.send(MessageType.DELTA, WsClient.delta("b" + i, doc, "f" + (i % 3), "b" + i));
            }
            for (int i = 0; i < 30; i++) {
                String ai = "a" + (i + 1);
                String bi = "b" + i;
                a.await("ack", r -> ai.equals(r.text("messageId")));
                b.await("ack", r -> bi.equals(r.text("messageId")));
            }
            assertEquals(1, owned(one));
            assertEquals(0, owned(two), "the forwarding instance never became an owner");
            assertEquals(claimed, epoch(db, doc), "nobody claimed the document again");

            // Everybody converges on what is stored, including the forwarding instance's own client.
            for (WsClient c : List.of(a, b)) {
                for (String f : List.of("f0", "f1", "f2")) {
                    JsonNode stored = storedField(db, doc, f);
                    assertNotNull(stored);
                    c.await("delta", r -> f.equals(r.text("field")) && stored.asText().equals(r.text("value")));
                }
            }
        }
    }

    @Test
    void aDrainingOwnerHandsItsDocumentsOverWithoutErrors() throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "drained-doc";
        try (TestDatabase db = TestDatabase.create();
             TestServer two = TestServer.start(node(db, prefix))) {
            TestServer one = TestServer.start(node(db, prefix));
            WsClient onOne = subscribed(one, doc);
            onOne.send(MessageType.DELTA, WsClient.delta("x", doc, "f", "x"));
            onOne.await("ack");
            assertEquals(1, owned(one));
            long firstEpoch = epoch(db, doc);

            try (WsClient b = subscribed(two, doc)) {
                int n = 200;
                Thread writer = Thread.ofVirtual().start(() -> {
                    for (int i = 0; i < n; i++) {
                        b.send(MessageType.DELTA, WsClient.delta("b" + i, doc, "n", i));
                        try {
                            Thread.sleep(5);
                        } catch (InterruptedException e) {
                            return;
                        }
                    }
                });
                Thread.sleep(300);
                onOne.close();
                one.close(); // drains: releases the lease, so two takes over without waiting out the TTL
                writer.join();
                for (int i = 0; i < n; i++) {
                    String id = "b" + i;
                    b.await("ack", r -> id.equals(r.text("messageId")));
                }
                assertTrue(b.pending().stream().noneMatch(r -> r.type().equals("error")), "errors: " + b.pending());
                eventually("the other instance owns the document", () -> owned(two) == 1);
                assertTrue(epoch(db, doc) > firstEpoch, "the new owner claimed the document");
                assertEquals(n - 1, storedField(db, doc, "n").asInt(), "the last write is the stored one");
            }
        }
    }

    @Test
    void anIdleDocumentIsReleasedAndAnotherInstanceMayTakeItThen() throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "idle-doc";
        try (TestDatabase db = TestDatabase.create()) {
            Map<String, String> settings = new java.util.HashMap<>(node(db, prefix));
            settings.put("synckit.cluster.idle-release-ms", "300");
            try (TestServer one = TestServer.start(settings);
                 TestServer two = TestServer.start(settings);
                 WsClient a = subscribed(one, doc);
                 WsClient b = subscribed(two, doc)) {
                a.send(MessageType.DELTA, WsClient.delta("a", doc, "f", "a"));
                a.await("ack");
                assertEquals(1, owned(one));
                eventually("the idle document released", () -> owned(one) == 0);
                b.send(MessageType.DELTA, WsClient.delta("b", doc, "f", "b"));
                b.await("ack");
                assertEquals(1, owned(two), "with no owner, the next writer's instance takes the document");
                a.await("delta", r -> "b".equals(r.text("value")));
            }
        }
    }

    @Test
    void withoutRedisEveryInstanceCommitsItselfAndOwnershipReturnsWithRedis() throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "degraded-doc";
        java.net.URI redis = TestRedis.address();
        try (TestDatabase db = TestDatabase.create();
             dev.synckit.server.testing.TcpProxy proxy = new dev.synckit.server.testing.TcpProxy(redis.getHost(), redis.getPort())) {
            Map<String, String> settings = new java.util.HashMap<>(node(db, prefix));
            settings.put("synckit.redis.url", "redis://127.0.0.1:" + proxy.port());
            settings.put("synckit.cluster.idle-release-ms", "60000");
            try (TestServer one = TestServer.start(settings);
                 TestServer two = TestServer.start(settings);
                 WsClient a = subscribed(one, doc);
                 WsClient b = subscribed(two, doc)) {
                a.send(MessageType.DELTA, WsClient.delta("first", doc, "f", "first"));
                a.await("ack");
                assertEquals(1, owned(one));

                proxy.cut();
                long cutAt = System.nanoTime();
                for (int i = 0; i < 10; i++) {
                    String ai = "a" + i;
                    String bi = "b" + i;
                    a.send(MessageType.DELTA, WsClient.delta(ai, doc, "a", ai));
                    b.send(MessageType.DELTA, WsClient.delta(bi, doc, "b", bi));
                    a.await("ack", r -> ai.equals(r.text("messageId")));
                    b.await("ack", r -> bi.equals(r.text("messageId")));
                }
                long outageMillis = (System.nanoTime() - cutAt) / 1_000_000;
                assertTrue(b.pending().stream().noneMatch(r -> r.type().equals("error")), "errors: " + b.pending());
                assertEquals("a9", storedField(db, doc, "a").asText());
                assertEquals("b9", storedField(db, doc, "b").asText());
                eventually("the old owner stops trusting its lease", () -> owned(one) == 0 || System.nanoTime() - cutAt > 4e9);

                proxy.restore();
                eventually("ownership back once Redis answers", () -> {
                    b.send(MessageType.DELTA, WsClient.delta("after-" + System.nanoTime(), doc, "c", "after"));
                    return owned(one) + owned(two) == 1;
                });
                System.out.println("20 writes during the Redis outage acknowledged in " + outageMillis + " ms");
            }
        }
    }

    private static JsonNode storedField(TestDatabase db, String doc, String field) throws Exception {
        try (Connection c = db.connect(); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT state -> 'fields' -> '" + field + "' FROM documents WHERE id = '" + doc + "'")) {
            return rs.next() && rs.getString(1) != null ? Json.MAPPER.readTree(rs.getString(1)) : null;
        }
    }
}
