package dev.synckit.server.ws;

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
                WsClient.Received delta = c.await("delta", r -> "title".equals(r.text("field")));
                assertEquals("Hello", delta.text("value"));
                assertEquals("server", delta.text("clientId"));
                assertEquals(5, delta.payload().get("clock").get("client-a").asLong());
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
}
