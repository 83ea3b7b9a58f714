package dev.synckit.server.pubsub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.Await;
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
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** An instance that missed other instances' writes catches up, however its catch-up is hindered. */
class CatchUpTest {

    private static Map<String, String> node(String dbUrl, String redisUrl, String prefix, String... extra) {
        Map<String, String> m = new HashMap<>(Map.of("synckit.storage.url", dbUrl, "synckit.redis.url", redisUrl,
                "synckit.redis.channel-prefix", prefix, "synckit.redis.timeout-ms", "1000"));
        for (int i = 0; i < extra.length; i += 2) {
            m.put(extra[i], extra[i + 1]);
        }
        return m;
    }

    private static boolean sawDelta(WsClient c, String doc, String field, Object value) {
        return c.pending().stream().anyMatch(r -> r.type().equals("delta") && doc.equals(r.text("documentId"))
                && field.equals(r.text("field")) && Json.MAPPER.valueToTree(value).toString().equals(r.payload().get("value").toString()));
    }

    @Test
    void anInstanceListensToEveryDocumentItsClientsHoldNotJustTheFirstTwenty() throws Exception {
        String prefix = TestRedis.freshPrefix();
        int documents = 60;
        try (TestDatabase db = TestDatabase.create();
             TestServer one = TestServer.start(node(db.url(), TestRedis.url(), prefix));
             TestServer two = TestServer.start(node(db.url(), TestRedis.url(), prefix));
             WsClient writer = WsClient.binary(one.wsUri());
             WsClient reader = WsClient.binary(two.wsUri())) {
            for (int i = 0; i < documents; i++) {
                String doc = "many-" + i;
                reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
                reader.await("sync_response", r -> doc.equals(r.text("documentId")));
            }
            Thread.sleep(1000); // let the Redis subscriptions settle
            for (int i = 0; i < documents; i++) {
                writer.send(MessageType.DELTA, WsClient.delta("w" + i, "many-" + i, "v", i));
            }
            for (int i = 0; i < documents; i++) {
                String doc = "many-" + i;
                int value = i;
                Await.waitFor(doc + " on the other instance", Duration.ofSeconds(10), () -> sawDelta(reader, doc, "v", value));
            }
        }
    }

    @Test
    void aFailedCatchUpIsRetriedUntilEveryDocumentIsCurrent() throws Exception {
        String prefix = TestRedis.freshPrefix();
        int documents = 50;
        URI redis = TestRedis.address();
        try (TestDatabase db = TestDatabase.create();
             TcpProxy redisProxy = new TcpProxy(redis.getHost(), redis.getPort());
             TcpProxy dbProxy = new TcpProxy(db.address().getHost(), db.address().getPort());
             TestServer writerSide = TestServer.start(node(db.url(), TestRedis.url(), prefix));
             // A small pool and short waits for a connection, as a small instance would have.
             TestServer lagging = TestServer.start(node(db.urlVia(dbProxy.port()), "redis://127.0.0.1:" + redisProxy.port(),
                     prefix, "synckit.storage.pool-size", "2", "synckit.storage.group-commit.committers", "1",
                     "synckit.storage.connect-timeout-ms", "300"));
             WsClient writer = WsClient.binary(writerSide.wsUri());
             WsClient reader = WsClient.binary(lagging.wsUri())) {
            for (int i = 0; i < documents; i++) {
                reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", "doc-" + i));
                String doc = "doc-" + i;
                reader.await("sync_response", r -> doc.equals(r.text("documentId")));
            }
            Thread.sleep(500); // let the Redis subscriptions settle

            redisProxy.cut(); // the lagging instance hears nothing of these writes
            for (int i = 0; i < documents; i++) {
                String id = "w" + i;
                writer.send(MessageType.DELTA, WsClient.delta(id, "doc-" + i, "v", 1));
                writer.await("ack", r -> id.equals(r.text("messageId")));
            }
            // Redis comes back while the lagging instance cannot read PostgreSQL: every document's catch-up
            // (one per resubscribed channel, all at once) fails.
            dbProxy.cut();
            redisProxy.restore();
            Thread.sleep(4000);
            dbProxy.restore();

            for (int i = 0; i < documents; i++) {
                String doc = "doc-" + i;
                Await.waitFor(doc + " to catch up on the lagging instance", Duration.ofSeconds(30),
                        () -> sawDelta(reader, doc, "v", 1));
            }
        }
    }

    /** Counter, set and text ops missed while Redis was away reach the lagging instance's clients after the catch-up. */
    @Test
    void missedDataTypeOpsReachClientsAfterTheCatchUp() throws Exception {
        String prefix = TestRedis.freshPrefix();
        URI redis = TestRedis.address();
        try (TestDatabase db = TestDatabase.create();
             TcpProxy redisProxy = new TcpProxy(redis.getHost(), redis.getPort());
             TestServer writerSide = TestServer.start(node(db.url(), TestRedis.url(), prefix));
             TestServer lagging = TestServer.start(node(db.url(), "redis://127.0.0.1:" + redisProxy.port(), prefix));
             WsClient writer = WsClient.binary(writerSide.wsUri());
             WsClient reader = WsClient.binary(lagging.wsUri())) {
            for (String doc : List.of("c", "s", "t")) {
                reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
                reader.await("sync_response", r -> doc.equals(r.text("documentId")));
            }
            Thread.sleep(500); // let the Redis subscriptions settle
            redisProxy.cut();
            String text = "{\"blocks\":[[{\"client_id\":\"w\",\"clock\":2,\"offset\":0},{\"id\":{\"client_id\":\"w\","
                    + "\"clock\":2,\"offset\":0},\"text\":\"hi\",\"left_origin\":null,\"right_origin\":null,\"deleted\":false}]],"
                    + "\"clock\":{\"value\":2},\"client_id\":\"w\"}";
            List<ObjectNode> ops = List.of(
                    Json.object().put("type", "counter").put("operation", "increment").put("value", 5).put("clientId", "w"),
                    Json.object().put("type", "set").put("operation", "add").put("value", "a").put("clientId", "w"),
                    Json.object().put("type", "text-state").put("state", text).put("clientId", "w"));
            List<String> docs = List.of("c", "s", "t");
            for (int i = 0; i < 3; i++) {
                ObjectNode batch = Json.object().put("documentId", docs.get(i)).put("messageId", "m" + i);
                batch.putArray("deltas").add(ops.get(i));
                writer.send(MessageType.DELTA_BATCH, batch);
                String id = "m" + i;
                writer.await("ack", r -> id.equals(r.text("messageId")));
            }
            redisProxy.restore();
            for (String doc : docs) {
                Await.waitFor(doc + " ops on the lagging instance", Duration.ofSeconds(20), () -> reader.pending().stream()
                        .anyMatch(r -> r.type().equals("delta_batch") && doc.equals(r.text("documentId"))));
            }
            List<JsonNode> got = new java.util.ArrayList<>();
            reader.pending().stream().filter(r -> r.type().equals("delta_batch"))
                    .forEach(r -> r.payload().get("deltas").forEach(got::add));
            assertTrue(got.stream().anyMatch(op -> op.path("type").asText().equals("counter") && op.path("value").asLong() == 5), got.toString());
            assertTrue(got.stream().anyMatch(op -> op.path("type").asText().equals("set") && op.path("value").asText().equals("a")), got.toString());
            assertTrue(got.stream().anyMatch(op -> op.path("type").asText().equals("text-state")), got.toString());
        }
    }

    @Test
    void writesCommittedWhileShuttingDownStillReachTheOtherInstances() throws Exception {
        String prefix = TestRedis.freshPrefix();
        String doc = "last-words";
        try (TestDatabase db = TestDatabase.create();
             TestServer other = TestServer.start(node(db.url(), TestRedis.url(), prefix));
             WsClient listener = WsClient.binary(other.wsUri())) {
            listener.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
            listener.await("sync_response");
            TestServer leaving = TestServer.start(node(db.url(), TestRedis.url(), prefix));
            WsClient writer = WsClient.binary(leaving.wsUri());
            writer.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
            writer.await("sync_response");
            Thread.sleep(500); // let the Redis subscriptions settle
            for (int i = 1; i <= 300; i++) {
                writer.send(MessageType.DELTA, WsClient.delta("w" + i, doc, "n", i)); // pipelined, not awaited
            }
            writer.await("ack", r -> "w1".equals(r.text("messageId")));
            leaving.close(); // writes still committing when it starts closing
            writer.close();

            long stored;
            try (Connection sql = db.connect(); Statement st = sql.createStatement();
                 ResultSet rs = st.executeQuery("SELECT (state -> 'fields' ->> 'n')::bigint FROM documents WHERE id = '" + doc + "'")) {
                rs.next();
                stored = rs.getLong(1);
            }
            // Nothing else is written, so only the leaving instance's own announcements can tell the other.
            Await.waitFor("the last stored value (" + stored + ") on the other instance", Duration.ofSeconds(10),
                    () -> sawDelta(listener, doc, "n", stored));
            listener.send(MessageType.SYNC_REQUEST, Json.object().put("id", "s").put("documentId", doc));
            assertEquals(stored, listener.await("sync_response", r -> "s".equals(r.text("requestId")))
                    .payload().get("state").get("n").asLong());
        }
    }
}
