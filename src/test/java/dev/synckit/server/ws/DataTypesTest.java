package dev.synckit.server.ws;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.crdt.DataTypes;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Counter, set and rich-text format ops (PROTOCOL.md §6.11) through a real server on PostgreSQL: who gets
 * them, what a late joiner and a restarted server give back, and what bad ops do (nothing).
 */
class DataTypesTest {

    private static ObjectNode batch(String doc, String messageId, ObjectNode... ops) {
        ObjectNode b = Json.object().put("documentId", doc).put("messageId", messageId);
        ArrayNode deltas = b.putArray("deltas");
        for (ObjectNode op : ops) {
            deltas.add(op.put("documentId", doc));
        }
        return b;
    }

    private static ObjectNode counter(String client, String operation, Object value) {
        ObjectNode op = Json.object().put("type", "counter").put("operation", operation).put("clientId", client);
        op.set("value", Json.MAPPER.valueToTree(value));
        return op;
    }

    private static ObjectNode set(String client, String operation, String value) {
        ObjectNode op = Json.object().put("type", "set").put("operation", operation).put("clientId", client);
        return value == null ? op : op.put("value", value);
    }

    private static WsClient subscribed(TestServer server, String doc) {
        WsClient c = WsClient.binary(server.wsUri());
        c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
        c.await("sync_response");
        return c;
    }

    /** The ops of every delta_batch the client received within the wait. */
    private static List<JsonNode> ops(WsClient c, Duration wait) {
        List<JsonNode> out = new ArrayList<>();
        c.takeAll("delta_batch", wait).forEach(r -> r.payload().get("deltas").forEach(out::add));
        return out;
    }

    private static long total(List<JsonNode> ops) {
        long sum = 0;
        for (JsonNode op : ops) {
            if (op.path("type").asText().equals("counter")) {
                sum += (op.path("operation").asText().equals("increment") ? 1 : -1) * op.path("value").asLong();
            }
        }
        return sum;
    }

    @Test
    void countersReachOthersOnlyAndLateJoinersGetTheTotal() throws Exception {
        String doc = "likes";
        TestDatabase db = TestDatabase.create();
        try (TestServer server = TestServer.start(Map.of("synckit.storage.url", db.url()))) {
            try (WsClient a = subscribed(server, doc); WsClient b = subscribed(server, doc)) {
                a.send(MessageType.DELTA_BATCH, batch(doc, "a1", counter("client-a", "increment", 3)));
                a.await("ack");
                b.send(MessageType.DELTA_BATCH, batch(doc, "b1", counter("client-b", "increment", 10),
                        counter("client-b", "decrement", 6)));
                b.await("ack");
                assertEquals(3, total(ops(b, Duration.ofMillis(300))), "b hears a's +3, not its own ops");
                assertEquals(4, total(ops(a, Duration.ofMillis(300))), "a hears b's +10 and -6, not its own +3");
            }
            lateJoinerGetsTheTotalOnce(server, doc);
        }
        // and after a restart, from the database
        try (TestServer again = TestServer.start(Map.of("synckit.storage.url", db.url()))) {
            lateJoinerGetsTheTotalOnce(again, doc);
        }
        db.close();
    }

    private static void lateJoinerGetsTheTotalOnce(TestServer server, String doc) {
        try (WsClient late = subscribed(server, doc)) {
            assertEquals(7, total(ops(late, Duration.ofMillis(500))));
            late.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
            late.await("sync_response");
            assertEquals(0, total(ops(late, Duration.ofMillis(300))), "a repeated subscribe does not resend the total");
        }
    }

    @Test
    void setOpsReachEveryoneInCommitOrderAndLateJoinersGetTheMembers() throws Exception {
        String doc = "tags";
        try (TestServer server = TestServer.start();
             WsClient a = subscribed(server, doc); WsClient b = subscribed(server, doc)) {
            a.send(MessageType.DELTA_BATCH, batch(doc, "a1", set("client-a", "add", "x"), set("client-a", "add", "y")));
            a.await("ack");
            b.send(MessageType.DELTA_BATCH, batch(doc, "b1", set("client-b", "remove", "x")));
            b.await("ack");
            for (WsClient c : List.of(a, b)) {
                List<String> seen = ops(c, Duration.ofMillis(300)).stream()
                        .map(op -> op.path("operation").asText() + ":" + op.path("value").asText("")).toList();
                assertEquals(List.of("add:x", "add:y", "remove:x"), seen, "the writer replays the server's order too");
            }
            try (WsClient late = subscribed(server, doc)) {
                List<String> seen = ops(late, Duration.ofMillis(300)).stream()
                        .map(op -> op.path("operation").asText() + ":" + op.path("value").asText("")).toList();
                assertEquals(List.of("clear:", "add:y"), seen);
            }
        }
    }

    @Test
    void formatOpsAreStoredAndRelayedToOthers() throws Exception {
        String doc = "rich";
        try (TestDatabase db = TestDatabase.create();
             TestServer server = TestServer.start(Map.of("synckit.storage.url", db.url()));
             WsClient a = subscribed(server, doc); WsClient b = subscribed(server, doc)) {
            ObjectNode format = Json.object().put("type", "richtext").put("operation", "format").put("clientId", "client-a")
                    .put("opId", "fmt-1").put("start", 0).put("end", 5);
            format.putObject("attributes").put("bold", true);
            a.send(MessageType.DELTA_BATCH, batch(doc, "a1", format));
            a.await("ack");
            assertEquals("fmt-1", b.await("delta_batch").payload().get("deltas").get(0).get("opId").asText());
            a.expectNone("delta_batch", Duration.ofMillis(200));
            DataTypes stored;
            try (java.sql.Connection sql = db.connect(); var st = sql.prepareStatement("SELECT data_types FROM documents WHERE id = ?")) {
                st.setString(1, doc);
                try (var rs = st.executeQuery()) {
                    assertTrue(rs.next());
                    stored = DataTypes.fromJson(Json.MAPPER.readTree(rs.getString(1)));
                }
            }
            assertEquals(1, stored.formats().size());
            assertEquals(true, stored.formats().getFirst().path("attributes").path("bold").asBoolean());
        }
    }

    @Test
    void badOpsGetAnErrorAndChangeNothing() throws Exception {
        String doc = "hostile";
        try (TestServer server = TestServer.start(); WsClient a = subscribed(server, doc)) {
            a.send(MessageType.DELTA_BATCH, batch(doc, "ok", counter("client-a", "increment", 5)));
            a.await("ack");
            List<ObjectNode> bad = List.of(
                    counter("client-a", "increment", -3),
                    counter("client-a", "decrement", "lots"),
                    counter("client-a", "increment", 1.5),
                    counter("client-a", "increment", 1e300),
                    counter("client-a", "reset", 1),
                    set("client-a", "add", null),
                    Json.object().put("type", "text-state").put("state", "{\"blocks\":[[{\"client_id\":\"a\""),
                    Json.object().put("type", "richtext").put("operation", "format").put("opId", "f").put("start", 4).put("end", 2));
            int n = 0;
            for (ObjectNode op : bad) {
                // each with a good op before it in the same batch, which must not apply either
                a.send(MessageType.DELTA_BATCH, batch(doc, "bad" + n++, counter("client-a", "increment", 100), op));
                WsClient.Received error = a.await("error");
                assertTrue(error.payload().path("details").path("code").asText().startsWith("INVALID"), error.payload().toString());
            }
            a.expectNone("ack", Duration.ofMillis(200));
            try (WsClient late = subscribed(server, doc)) {
                assertEquals(5, total(ops(late, Duration.ofMillis(300))), "no bad batch changed the counter");
            }
        }
    }
}
