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
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.function.Consumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Malformed input of every kind (PROTOCOL.md §8): each gets the documented {@code error} reply, the
 * connection that sent it stays usable, and the server keeps serving everybody else.
 */
class BadInputTest {
    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static String doc(String name) {
        return name + "-" + System.nanoTime();
    }

    /** A binary frame with a correct header around arbitrary payload bytes. */
    private static byte[] frame(int code, byte[] payload) {
        return ByteBuffer.allocate(13 + payload.length).put((byte) code).putLong(System.currentTimeMillis())
                .putInt(payload.length).put(payload).array();
    }

    private static byte[] frame(int code, String payload) {
        return frame(code, payload.getBytes(StandardCharsets.UTF_8));
    }

    /** A binary frame whose header claims {@code claimed} payload bytes. */
    private static byte[] frameClaiming(int code, int claimed, String payload) {
        byte[] p = payload.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(13 + p.length).put((byte) code).putLong(System.currentTimeMillis())
                .putInt(claimed).put(p).array();
    }

    private static ObjectNode validDelta(String documentId, String messageId, String field, String value) {
        ObjectNode d = Json.object().put("documentId", documentId).put("messageId", messageId);
        d.putObject("delta").put(field, value);
        return d;
    }

    /** Awaits the error reply whose text starts with the prefix and checks details.code (when given). */
    static WsClient.Received expectError(WsClient c, String prefix, String code) {
        WsClient.Received e = c.await("error", r -> r.text("error") != null && r.text("error").startsWith(prefix));
        if (code != null) {
            assertEquals(code, e.payload().path("details").path("code").asText(null),
                    "details.code of " + e.payload());
        }
        return e;
    }

    /**
     * The connection still answers ping, and a fresh client can subscribe, write, get the ack and the
     * broadcast, while another subscriber receives the broadcast too.
     */
    static void assertStillServes(TestServer s, WsClient sameConnection) {
        if (sameConnection != null) {
            assertFalse(sameConnection.isClosed(), "the connection that sent bad input was closed");
            sameConnection.send(MessageType.PING, Json.object());
            sameConnection.await("pong");
            assertFalse(sameConnection.isClosed());
        }
        String id = doc("still-serves");
        try (WsClient writer = WsClient.binary(s.wsUri()); WsClient reader = WsClient.json(s.wsUri())) {
            reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            reader.await("sync_response", r -> id.equals(r.text("documentId")));
            writer.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            writer.await("sync_response", r -> id.equals(r.text("documentId")));
            writer.send(MessageType.DELTA, validDelta(id, "ok-1", "status", "alive"));
            assertEquals("ok-1", writer.await("ack").text("messageId"));
            for (WsClient c : new WsClient[] {writer, reader}) {
                WsClient.Received delta = c.await("delta", r -> "status".equals(r.text("field")));
                assertEquals("alive", delta.text("value"));
                assertEquals(id, delta.text("documentId"));
            }
        }
    }

    record Case(String name, boolean binaryClient, Consumer<WsClient> send, String prefix, String code) {
        @Override
        public String toString() {
            return name;
        }
    }

    private static Case bin(String name, byte[] bytes, String prefix, String code) {
        return new Case(name, true, c -> c.sendBinary(bytes), prefix, code);
    }

    private static Case text(String name, String text, String prefix, String code) {
        return new Case(name, false, c -> c.sendText(text), prefix, code);
    }

    private static Case msg(String name, boolean binary, MessageType type, ObjectNode payload, String prefix,
                            String code) {
        return new Case(name, binary, c -> c.send(type, payload), prefix, code);
    }

    static Stream<Arguments> badInputs() {
        String fmt = "Invalid message format: ";
        ObjectNode batchStringOp = Json.object().put("documentId", "d1");
        batchStringOp.putArray("deltas").add("set title=x");
        ObjectNode emptyBatch = Json.object().put("documentId", "d1");
        emptyBatch.putArray("deltas");
        ObjectNode clockString = validDelta("d1", "m1", "a", "b");
        clockString.putObject("vectorClock").put("client-a", "seven");
        ObjectNode clockNegative = validDelta("d1", "m1", "a", "b");
        clockNegative.putObject("vectorClock").put("client-a", -1);
        ObjectNode clockFraction = validDelta("d1", "m1", "a", "b");
        clockFraction.putObject("vectorClock").put("client-a", 2.5);
        ObjectNode batchOpClockString = Json.object().put("documentId", "d1");
        ObjectNode op = batchOpClockString.putArray("deltas").addObject().put("type", "set").put("field", "f")
                .put("value", 1);
        op.putObject("clock").put("c", "x");
        ObjectNode batchFieldNumber = Json.object().put("documentId", "d1");
        batchFieldNumber.putArray("deltas").addObject().put("type", "set").put("field", 5).put("value", 1);
        ObjectNode emptyDeltaObject = Json.object().put("documentId", "d1");
        emptyDeltaObject.putObject("delta");
        String nested = "[".repeat(5000) + "]".repeat(5000);
        return Stream.of(
                bin("garbage bytes", new byte[] {(byte) 0x99, 0x01, 0x02}, fmt + "frame of 3 bytes", "INVALID_MESSAGE"),
                bin("empty binary frame", new byte[0], fmt + "frame of 0 bytes", "INVALID_MESSAGE"),
                bin("truncated header", Arrays.copyOf(frame(0x30, "{}"), 5), fmt + "frame of 5 bytes",
                        "INVALID_MESSAGE"),
                bin("header length shorter than payload", frameClaiming(0x30, 1, "{\"id\":\"p\"}"),
                        fmt + "header says 1 payload bytes", "INVALID_MESSAGE"),
                bin("header length longer than payload", frameClaiming(0x30, 500, "{}"),
                        fmt + "header says 500 payload bytes", "INVALID_MESSAGE"),
                bin("header length negative as signed int", frameClaiming(0x30, -1, "{}"),
                        fmt + "header says 4294967295", "INVALID_MESSAGE"),
                bin("invalid JSON payload in binary frame", frame(0x30, "{not json"), fmt + "payload is not valid JSON",
                        "INVALID_MESSAGE"),
                bin("array payload in binary frame", frame(0x30, "[1,2]"), fmt + "payload must be a JSON object",
                        "INVALID_MESSAGE"),
                bin("number payload in binary frame", frame(0x30, "42"), fmt + "payload must be a JSON object",
                        "INVALID_MESSAGE"),
                bin("empty payload in binary frame", frame(0x30, ""), fmt + "empty payload", "INVALID_MESSAGE"),
                bin("invalid UTF-8 payload", frame(0x10, new byte[] {'{', '"', 'a', '"', ':', '"', (byte) 0xC3,
                        (byte) 0x28, '"', '}'}), fmt + "payload is not valid JSON", "INVALID_MESSAGE"),
                bin("deeply nested JSON payload", frame(0x30, nested), fmt + "payload", "INVALID_MESSAGE"),
                bin("unknown binary type code", frame(0x77, "{}"), fmt + "unknown type code 0x77", "INVALID_MESSAGE"),
                bin("server-only binary type code", frame(0x02, "{}"), "Invalid message type: auth_success",
                        "INVALID_MESSAGE"),
                text("invalid JSON text frame", "{\"type\": \"ping\",", fmt + "payload is not valid JSON",
                        "INVALID_MESSAGE"),
                text("JSON array text frame", "[{\"type\":\"ping\"}]", fmt + "payload must be a JSON object",
                        "INVALID_MESSAGE"),
                text("JSON number text frame", "12345", fmt + "payload must be a JSON object", "INVALID_MESSAGE"),
                text("empty text frame", "", fmt + "empty payload", "INVALID_MESSAGE"),
                text("JSON text without type", "{\"documentId\":\"d1\"}", fmt + "missing \"type\"", "INVALID_MESSAGE"),
                text("JSON text with numeric type", "{\"type\":48}", fmt + "missing \"type\"", "INVALID_MESSAGE"),
                text("unknown type string", "{\"type\":\"frobnicate\"}", "Invalid message type: frobnicate",
                        "INVALID_MESSAGE"),
                text("server-only type string", "{\"type\":\"auth_success\",\"userId\":\"me\"}",
                        "Invalid message type: auth_success", "INVALID_MESSAGE"),
                text("server-only error type string", "{\"type\":\"error\",\"error\":\"x\"}",
                        "Invalid message type: error", "INVALID_MESSAGE"),
                msg("subscribe without documentId", true, MessageType.SUBSCRIBE, Json.object(), "Invalid document ID",
                        "INVALID_DOCUMENT_ID"),
                msg("subscribe with numeric documentId", false, MessageType.SUBSCRIBE,
                        Json.object().put("documentId", 17), "Invalid document ID", "INVALID_DOCUMENT_ID"),
                msg("subscribe with empty documentId", true, MessageType.SUBSCRIBE, Json.object().put("documentId", ""),
                        "Invalid document ID", "INVALID_DOCUMENT_ID"),
                msg("documentId with spaces", false, MessageType.SUBSCRIBE,
                        Json.object().put("documentId", "my doc"), "Document ID contains invalid characters",
                        "INVALID_DOCUMENT_ID"),
                msg("documentId with path characters", true, MessageType.SYNC_REQUEST,
                        Json.object().put("documentId", "../etc/passwd"), "Document ID contains invalid characters",
                        "INVALID_DOCUMENT_ID"),
                msg("300-char documentId", true, MessageType.SUBSCRIBE, Json.object().put("documentId", "a".repeat(300)),
                        "Document ID too long", "INVALID_DOCUMENT_ID"),
                msg("delta without delta or field", true, MessageType.DELTA, Json.object().put("documentId", "d1"),
                        "Invalid delta message: missing or empty delta", "INVALID_MESSAGE"),
                msg("delta with empty delta object", false, MessageType.DELTA, emptyDeltaObject,
                        "Invalid delta message: missing or empty delta", "INVALID_MESSAGE"),
                msg("delta with field but no value", true, MessageType.DELTA,
                        Json.object().put("documentId", "d1").put("field", "f"),
                        "Invalid delta message: missing or empty delta", "INVALID_MESSAGE"),
                msg("delta_batch with empty deltas", true, MessageType.DELTA_BATCH, emptyBatch,
                        "Invalid delta batch: missing or empty deltas array", "INVALID_MESSAGE"),
                msg("delta_batch without deltas", false, MessageType.DELTA_BATCH, Json.object().put("documentId", "d1"),
                        "Invalid delta batch: missing or empty deltas array", "INVALID_MESSAGE"),
                msg("delta_batch whose op is a string", true, MessageType.DELTA_BATCH, batchStringOp,
                        "Invalid delta batch: every delta must be an object", "INVALID_MESSAGE"),
                msg("delta_batch op with numeric field", true, MessageType.DELTA_BATCH, batchFieldNumber,
                        "Invalid delta batch: \"field\" must be a string", "INVALID_MESSAGE"),
                msg("delta_batch op with string clock value", true, MessageType.DELTA_BATCH, batchOpClockString,
                        fmt + "\"clock\" must map", "INVALID_MESSAGE"),
                msg("vectorClock with string value", true, MessageType.DELTA, clockString,
                        fmt + "\"vectorClock\" must map", "INVALID_MESSAGE"),
                msg("vectorClock with negative value", false, MessageType.DELTA, clockNegative,
                        fmt + "\"vectorClock\" must map", "INVALID_MESSAGE"),
                msg("vectorClock with fractional value", true, MessageType.DELTA, clockFraction,
                        fmt + "\"vectorClock\" must map", "INVALID_MESSAGE"),
                msg("vectorClock that is an array", true, MessageType.SYNC_REQUEST,
                        (ObjectNode) Json.object().put("documentId", "d1").set("vectorClock", Json.MAPPER.createArrayNode()),
                        fmt + "\"vectorClock\" must be an object", "INVALID_MESSAGE"),
                msg("awareness_update with numeric state", true, MessageType.AWARENESS_UPDATE,
                        Json.object().put("documentId", "d1").put("clientId", "c1").put("state", 5),
                        "Invalid awareness state format", "INVALID_MESSAGE"),
                msg("awareness_update without clientId", false, MessageType.AWARENESS_UPDATE,
                        (ObjectNode) Json.object().put("documentId", "d1").set("state", Json.object()),
                        fmt + "awareness_update needs a clientId", "INVALID_MESSAGE"),
                msg("id that is not a string", true, MessageType.PING, Json.object().put("id", 12),
                        fmt + "\"id\" must be a string", "INVALID_MESSAGE"),
                msg("chunk index out of range", true, MessageType.DELTA_BATCH_CHUNK,
                        Json.object().put("chunkId", "c").put("totalChunks", 2).put("chunkIndex", 2).put("data", "e30="),
                        fmt + "chunkIndex must be in", "INVALID_MESSAGE"),
                msg("chunk data not base64", true, MessageType.DELTA_BATCH_CHUNK,
                        Json.object().put("chunkId", "c").put("totalChunks", 1).put("chunkIndex", 0).put("data", "%%%"),
                        fmt + "chunk data is not base64", "INVALID_MESSAGE")
        ).map(Arguments::of);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badInputs")
    void badInputGetsErrorAndEverythingKeepsWorking(Case c) {
        try (WsClient client = c.binaryClient() ? WsClient.binary(server.wsUri()) : WsClient.json(server.wsUri())) {
            c.send().accept(client);
            WsClient.Received error = expectError(client, c.prefix(), c.code());
            assertNotNull(error.text("id"), "error replies carry a message id");
            assertStillServes(server, client);
        }
    }

    @Test
    void badInputAfterValidTrafficKeepsTheEstablishedFraming() {
        try (WsClient client = WsClient.binary(server.wsUri())) {
            client.send(MessageType.PING, Json.object());
            assertTrue(client.await("pong").binaryFrame());
            client.sendText("{\"type\":\"frobnicate\"}");
            WsClient.Received error = expectError(client, "Invalid message type: frobnicate", "INVALID_MESSAGE");
            assertTrue(error.binaryFrame(), "replies follow the framing of the first message");
            assertStillServes(server, client);
        }
    }

    @Test
    void manyBadInputsInARowDoNotCloseTheConnection() {
        try (WsClient client = WsClient.binary(server.wsUri())) {
            for (int i = 0; i < 50; i++) {
                client.sendBinary(new byte[] {(byte) 0x99, (byte) i});
            }
            for (int i = 0; i < 50; i++) {
                expectError(client, "Invalid message format: frame of 2 bytes", "INVALID_MESSAGE");
            }
            assertStillServes(server, client);
        }
    }

    @Test
    void binaryMessageInThreeFragmentsIsReassembled() {
        String id = doc("fragments");
        try (WsClient client = WsClient.binary(server.wsUri())) {
            byte[] whole = WsClient.encode(MessageType.DELTA, validDelta(id, "frag-1", "title", "in pieces"));
            int a = 5; // splits the 13-byte header itself
            int b = 20;
            client.sendBinaryFragments(Arrays.copyOfRange(whole, 0, a), Arrays.copyOfRange(whole, a, b),
                    Arrays.copyOfRange(whole, b, whole.length));
            assertEquals("frag-1", client.await("ack").text("messageId"));
            assertEquals("in pieces", client.await("delta", r -> "title".equals(r.text("field"))).text("value"));
            assertStillServes(server, client);
        }
    }

    @Test
    void jsonTextInThreeFragmentsIsReassembled() {
        String id = doc("text-fragments");
        try (WsClient client = WsClient.json(server.wsUri())) {
            String json = "{\"type\":\"delta\",\"documentId\":\"" + id + "\",\"messageId\":\"tf-1\",\"delta\":{\"k\":\"v\"}}";
            client.sendTextFragments(json.substring(0, 7), json.substring(7, 30), json.substring(30));
            assertEquals("tf-1", client.await("ack").text("messageId"));
            assertStillServes(server, client);
        }
    }

    @Test
    void rejectedWritesDoNotCorruptTheDocument() {
        String id = doc("intact");
        try (WsClient client = WsClient.binary(server.wsUri())) {
            client.send(MessageType.DELTA, validDelta(id, "good-1", "title", "valid"));
            assertEquals("good-1", client.await("ack").text("messageId"));

            // A batch whose first op is valid but whose second is not: nothing of it may be applied.
            ObjectNode batch = Json.object().put("documentId", id).put("messageId", "bad-1");
            var deltas = batch.putArray("deltas");
            deltas.addObject().put("type", "set").put("field", "title").put("value", "CORRUPTED");
            deltas.add("not an op");
            client.send(MessageType.DELTA_BATCH, batch);
            expectError(client, "Invalid delta batch: every delta must be an object", "INVALID_MESSAGE");

            ObjectNode batch2 = Json.object().put("documentId", id).put("messageId", "bad-2");
            ObjectNode op = batch2.putArray("deltas").addObject().put("type", "set").put("field", "title")
                    .put("value", "CORRUPTED-2");
            op.putObject("clock").put("c", -5);
            client.send(MessageType.DELTA_BATCH, batch2);
            expectError(client, "Invalid message format: \"clock\" must map", "INVALID_MESSAGE");

            ObjectNode delta = validDelta(id, "bad-3", "title", "CORRUPTED-3");
            delta.putObject("vectorClock").put("c", "x");
            client.send(MessageType.DELTA, delta);
            expectError(client, "Invalid message format: \"vectorClock\" must map", "INVALID_MESSAGE");

            client.send(MessageType.SYNC_REQUEST, Json.object().put("id", "req-1").put("documentId", id));
            WsClient.Received sync = client.await("sync_response", r -> "req-1".equals(r.text("requestId")));
            assertEquals("valid", sync.payload().get("state").get("title").asText());
            assertEquals(1, sync.payload().get("state").size(), "state: " + sync.payload().get("state"));
            for (WsClient.Received r : client.pending()) {
                assertFalse(r.type().equals("ack") && r.text("messageId").startsWith("bad-"), "rejected write acked: " + r);
                assertFalse(r.type().equals("delta") && String.valueOf(r.text("value")).startsWith("CORRUPTED"),
                        "rejected write broadcast: " + r);
            }
        }
        try (WsClient other = WsClient.json(server.wsUri())) {
            other.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            WsClient.Received sync = other.await("sync_response", r -> id.equals(r.text("documentId")));
            assertEquals("valid", sync.payload().get("state").get("title").asText());
        }
    }
}
