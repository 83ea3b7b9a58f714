package dev.synckit.server.ws;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.net.URI;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every message type of PROTOCOL.md §5 over a real WebSocket, in both framings. */
class ProtocolTest {
    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static WsClient client(boolean binary) {
        URI uri = server.wsUri();
        return binary ? WsClient.binary(uri) : WsClient.json(uri);
    }

    private static String doc(String name) {
        return name + "-" + System.nanoTime();
    }

    @ParameterizedTest(name = "binary={0}")
    @ValueSource(booleans = {true, false})
    void pingGetsPongInTheClientsFraming(boolean binary) {
        try (WsClient c = client(binary)) {
            c.send(MessageType.PING, Json.object());
            WsClient.Received pong = c.await("pong");
            assertEquals(binary, pong.binaryFrame());
            assertNotNull(pong.text("id"));
        }
    }

    @ParameterizedTest(name = "binary={0}")
    @ValueSource(booleans = {true, false})
    void subscribeWriteAckAndBroadcast(boolean binary) {
        String id = doc("doc");
        try (WsClient writer = client(binary); WsClient reader = client(!binary)) {
            writer.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            WsClient.Received sync = writer.await("sync_response", r -> id.equals(r.text("documentId")));
            assertEquals(0, sync.payload().get("state").size());
            reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            reader.await("sync_response");

            ObjectNode op = Json.object().put("type", "set").put("documentId", id).put("field", "title")
                    .put("value", "Hello").put("clientId", "client-a").put("timestamp", 1L);
            op.putObject("clock").put("client-a", 5);
            ObjectNode batch = Json.object().put("documentId", id).put("messageId", "msg-1");
            batch.putArray("deltas").add(op);
            writer.send(MessageType.DELTA_BATCH, batch);

            assertEquals("msg-1", writer.await("ack").text("messageId"));
            for (WsClient c : new WsClient[] {writer, reader}) {
                // The writer sent a delta_batch, so it is known to be the SDK and is sent batches; the reader, deltas.
                JsonNode delta = c.awaitField("title");
                assertEquals("Hello", delta.path("value").asText());
                assertEquals("server", delta.path("clientId").asText());
                assertEquals(5, delta.get("clock").get("client-a").asLong());
            }
        }
    }

    @Test
    void syncRequestAnswersWithRequestIdStateAndClock() {
        String id = doc("doc");
        try (WsClient c = client(true)) {
            c.authAnonymously();
            ObjectNode delta = Json.object().put("id", "w1").put("documentId", id);
            delta.putObject("delta").put("a", 1).put("b", "two");
            delta.putObject("vectorClock");
            c.send(MessageType.DELTA, delta);
            assertEquals("w1", c.await("ack").text("messageId"));

            c.send(MessageType.SYNC_REQUEST, Json.object().put("id", "req-7").put("documentId", id));
            WsClient.Received r = c.await("sync_response", x -> "req-7".equals(x.text("requestId")));
            assertEquals(1, r.payload().get("state").get("a").asInt());
            assertEquals("two", r.payload().get("state").get("b").asText());
            assertTrue(r.payload().get("clock").size() > 0, "clock must not be empty when state is not");
            assertTrue(r.payload().get("deltas").isArray());
        }
    }

    @Test
    void unsubscribedClientGetsNoMoreBroadcasts() {
        String id = doc("doc");
        try (WsClient writer = client(true); WsClient reader = client(true)) {
            reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            reader.await("sync_response");
            reader.send(MessageType.UNSUBSCRIBE, Json.object().put("documentId", id));
            reader.send(MessageType.PING, Json.object());
            reader.await("pong"); // unsubscribe was processed (messages are handled in order)

            ObjectNode delta = Json.object().put("id", "w1").put("documentId", id);
            delta.putObject("delta").put("x", 1);
            writer.send(MessageType.DELTA, delta);
            writer.await("delta");
            reader.expectNone("delta", Duration.ofMillis(300));
        }
    }

    @Test
    void tombstoneRemovesFieldAndIsBroadcast() {
        String id = doc("doc");
        try (WsClient c = client(true)) {
            ObjectNode set = Json.object().put("id", "s").put("documentId", id);
            set.putObject("delta").put("gone", "soon").put("kept", true);
            c.send(MessageType.DELTA, set);
            c.await("ack");
            ObjectNode del = Json.object().put("id", "d").put("documentId", id);
            del.putObject("delta").putObject("gone").put("__deleted", true);
            c.send(MessageType.DELTA, del);
            c.await("ack", r -> "d".equals(r.text("messageId")));
            c.await("delta", r -> "gone".equals(r.text("field")) && r.payload().get("value").path("__deleted").asBoolean());

            c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            ObjectNode state = (ObjectNode) c.await("sync_response").payload().get("state");
            assertFalse(state.has("gone"));
            assertTrue(state.get("kept").asBoolean());
        }
    }

    @Test
    void deltaShapeBAndMessageIdAreHonoured() {
        String id = doc("doc");
        try (WsClient c = client(true)) {
            ObjectNode delta = Json.object().put("id", "x1").put("messageId", "m-77").put("documentId", id)
                    .put("field", "title").put("value", "Draft 3");
            delta.putObject("clock").put("client-q", 4);
            c.send(MessageType.DELTA, delta);
            assertEquals("m-77", c.await("ack").text("messageId"));
            WsClient.Received d = c.await("delta");
            assertEquals("Draft 3", d.text("value"));
            assertEquals(4, d.payload().get("clock").get("client-q").asLong());
        }
    }

    @Test
    void textStateIsRelayedToOthersAndReturnedOnSubscribe() {
        String id = doc("text");
        try (WsClient writer = client(true); WsClient peer = client(true)) {
            peer.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            peer.await("sync_response");
            String state = "{\"blocks\":[[{\"client_id\":\"client-w\",\"clock\":2,\"offset\":0},{\"id\":{\"client_id\":"
                    + "\"client-w\",\"clock\":2,\"offset\":0},\"text\":\"hi\",\"left_origin\":null,\"right_origin\":null,"
                    + "\"deleted\":false}]],\"clock\":{\"value\":2},\"client_id\":\"client-w\"}";
            ObjectNode op = Json.object().put("type", "text-state").put("state", state)
                    .put("documentId", id).put("clientId", "client-w").put("timestamp", 1700000000190L);
            ObjectNode batch = Json.object().put("documentId", id).put("messageId", "t1");
            batch.putArray("deltas").add(op);
            writer.send(MessageType.DELTA_BATCH, batch);
            writer.await("ack");
            WsClient.Received relay = peer.await("delta_batch");
            assertTrue(relay.payload().get("isTextOperation").asBoolean());
            String relayed = relay.payload().get("deltas").get(0).get("state").asText();
            assertEquals("hi", render(relayed), "the relay carries the merged state");
            writer.expectNone("delta_batch", Duration.ofMillis(200)); // not echoed to the writer

            try (WsClient late = client(true)) {
                late.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                WsClient.Received r = late.await("sync_response");
                assertEquals(relayed, r.text("textState"));
                assertTrue(r.payload().get("textClock").asLong() >= 1700000000190L);
            }
        }
    }

    @Test
    void jsonClientsMayUseNestedPayloadAndConnect() {
        String id = doc("doc");
        try (WsClient c = client(false)) {
            c.sendText("{\"type\":\"connect\",\"id\":\"c1\",\"timestamp\":1,\"clientId\":\"x\",\"version\":\"0.3.0\"}");
            c.sendText("{\"type\":\"subscribe\",\"timestamp\":1,\"payload\":{\"documentId\":\"" + id + "\"}}");
            WsClient.Received r = c.await("sync_response");
            assertEquals(id, r.text("documentId"));
            assertEquals("sync_response", r.text("type"));
            c.expectNone("error", Duration.ofMillis(200));
        }
    }

    @Test
    void syncStep1AndClientAcksAreAccepted() {
        String id = doc("doc");
        try (WsClient c = client(true)) {
            c.send(MessageType.ACK, Json.object().put("messageId", "whatever"));
            c.send(MessageType.SYNC_STEP1, Json.object().put("documentId", id).set("stateVector", Json.object()));
            WsClient.Received step2 = c.await("sync_step2");
            assertEquals(id, step2.text("documentId"));
            assertEquals(0, step2.payload().get("operations").size());
            c.expectNone("error", Duration.ofMillis(200));
        }
    }

    @Test
    void healthReportsRealCounts() throws Exception {
        String id = doc("health");
        try (WsClient c = client(true); var http = java.net.http.HttpClient.newHttpClient()) {
            c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            c.await("sync_response");
            var res = http.send(java.net.http.HttpRequest.newBuilder(server.httpUri("/health")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
            assertEquals(200, res.statusCode());
            var body = Json.MAPPER.readTree(res.body());
            assertEquals("healthy", body.get("status").asText());
            assertTrue(body.get("connections").get("totalConnections").asInt() >= 1);
            assertTrue(body.get("documents").get("totalDocuments").asInt() >= 1);
            // Ids and per-document subscribers are for admins only (HealthTest).
            assertFalse(res.body().contains(id), res.body());
        }
    }

    @Test
    void rootPathAcceptsWebSocketsToo() {
        try (WsClient c = WsClient.binary(URI.create("ws://127.0.0.1:" + server.port() + "/"))) {
            c.send(MessageType.PING, Json.object());
            c.await("pong");
        }
    }

    private static String render(String state) {
        try {
            return dev.synckit.server.crdt.FugueText.parse(state).render();
        } catch (dev.synckit.server.crdt.CrdtException e) {
            throw new AssertionError("not a text state: " + state, e);
        }
    }
}
