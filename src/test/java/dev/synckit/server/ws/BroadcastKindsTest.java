package dev.synckit.server.ws;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.Message;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Both kinds of client on one busy document: an SDK client (it writes with {@code delta_batch}, so it is sent
 * coalesced {@code delta_batch} broadcasts) and clients shaped like the upstream test client or an SDK reader
 * that never writes (per-field {@code delta}s). Every one of them must end up holding exactly the stored state.
 */
class BroadcastKindsTest {
    private static final String DOC = "kinds-doc";
    private static final int WRITES = 300;

    private static ObjectNode batch(String messageId, String field, int value, long clock) {
        ObjectNode b = Json.object().put("documentId", DOC).put("messageId", messageId);
        ArrayNode deltas = b.putArray("deltas");
        ObjectNode op = deltas.addObject().put("type", "set").put("documentId", DOC).put("field", field).put("value", value)
                .put("clientId", "client-sdk-1").put("timestamp", System.currentTimeMillis());
        op.putObject("clock").put("client-sdk-1", clock);
        return b;
    }

    /** Applies every field broadcast the client received, in arrival order, to the state it subscribed with. */
    private static Map<String, JsonNode> view(WsClient c, JsonNode initial, Map<String, Integer> frames) {
        Map<String, JsonNode> state = new HashMap<>();
        initial.fields().forEachRemaining(e -> state.put(e.getKey(), e.getValue()));
        for (WsClient.Received r : c.pending()) {
            switch (r.type()) {
                case "delta" -> apply(state, r.payload().path("field").asText(), r.payload().get("value"));
                case "delta_batch" -> r.payload().path("deltas").forEach(op -> apply(state, op.path("field").asText(), op.get("value")));
                default -> {
                    continue;
                }
            }
            frames.merge(r.type(), 1, Integer::sum);
        }
        return state;
    }

    private static void apply(Map<String, JsonNode> state, String field, JsonNode value) {
        if (Message.isTombstone(value)) {
            state.remove(field);
        } else {
            state.put(field, value);
        }
    }

    @Test
    void sdkAndTestClientShapedSubscribersBothReceiveEveryUpdate() {
        try (TestServer server = TestServer.start();
             WsClient sdk = WsClient.binary(server.wsUri());
             WsClient testClient = WsClient.json(server.wsUri());
             WsClient reader = WsClient.binary(server.wsUri())) {
            sdk.send(MessageType.SUBSCRIBE, Json.object().put("documentId", DOC));
            JsonNode sdkInitial = sdk.await("sync_response").payload().get("state");
            testClient.send(MessageType.SYNC_REQUEST, Json.object().put("id", "tc-sync").put("documentId", DOC));
            JsonNode tcInitial = testClient.await("sync_response").payload().get("state");
            reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", DOC));
            JsonNode readerInitial = reader.await("sync_response").payload().get("state");

            // Both writers at once, nothing waited for: rounds of broadcasts pile up behind each other.
            for (int i = 0; i < WRITES; i++) {
                sdk.send(MessageType.DELTA_BATCH, batch("s" + i, "f" + (i % 7), i, i + 1));
                testClient.send(MessageType.DELTA, WsClient.delta("t" + i, DOC, "f" + (i % 5), i % 3 == 0 ? Message.TOMBSTONE : -i));
            }
            for (int i = 0; i < WRITES; i++) {
                String s = "s" + i;
                String t = "t" + i;
                sdk.await("ack", r -> s.equals(r.text("messageId")));
                testClient.await("ack", r -> t.equals(r.text("messageId")));
            }
            reader.send(MessageType.SYNC_REQUEST, Json.object().put("id", "final").put("documentId", DOC));
            JsonNode stored = reader.await("sync_response", r -> "final".equals(r.text("requestId"))).payload().get("state");
            Map<String, JsonNode> expected = new HashMap<>();
            stored.fields().forEachRemaining(e -> expected.put(e.getKey(), e.getValue()));
            sdk.takeAll("none", Duration.ofMillis(500)); // let the last broadcasts arrive

            Map<String, Integer> sdkFrames = new HashMap<>();
            Map<String, Integer> tcFrames = new HashMap<>();
            Map<String, Integer> readerFrames = new HashMap<>();
            assertEquals(expected, view(sdk, sdkInitial, sdkFrames), "the SDK client's view");
            assertEquals(expected, view(testClient, tcInitial, tcFrames), "the test client's view");
            assertEquals(expected, view(reader, readerInitial, readerFrames), "the reader's view");
            assertTrue(sdkFrames.getOrDefault("delta_batch", 0) > 0, "the SDK client gets batches: " + sdkFrames);
            assertEquals(0, tcFrames.getOrDefault("delta_batch", 0), "the test client only understands delta: " + tcFrames);
            assertEquals(0, readerFrames.getOrDefault("delta_batch", 0), "a client not known to be the SDK gets deltas");
            assertTrue(readerFrames.getOrDefault("delta", 0) > 0);
        }
    }

    @Test
    void mergedFieldBatchesKeepEachFieldsLastValueInTheOrderOfLastChange() {
        Outbound a = Outbound.fieldBatch("d", body(Map.of("x", 1), "y", 2));
        Outbound b = Outbound.fieldBatch("d", body(Map.of(), "x", 3));
        Outbound merged = Outbound.merged(List.of(a, b));
        assertEquals("d", merged.fieldsOf());
        assertEquals(MessageType.DELTA_BATCH, merged.type());
        JsonNode deltas = merged.body().path("deltas");
        assertEquals(2, deltas.size());
        assertEquals("y", deltas.get(0).path("field").asText());
        assertEquals(2, deltas.get(0).path("value").asInt());
        assertEquals("x", deltas.get(1).path("field").asText());
        assertEquals(3, deltas.get(1).path("value").asInt());
    }

    @Test
    void mergingManyBatchesOfManyFieldsKeepsEachFieldsLastChangeInOrder() {
        java.util.Random random = new java.util.Random(7);
        for (int round = 0; round < 200; round++) {
            List<Outbound> batches = new java.util.ArrayList<>();
            java.util.LinkedHashMap<String, Integer> expected = new java.util.LinkedHashMap<>();
            int value = 0;
            for (int b = 0; b < 1 + random.nextInt(6); b++) {
                List<Outbound.FieldSet> fields = new java.util.ArrayList<>();
                java.util.Set<String> inBatch = new java.util.HashSet<>();
                for (int f = 0; f < 1 + random.nextInt(30); f++) {
                    String field = "f" + random.nextInt(40);
                    if (inBatch.add(field)) { // a round holds each field once
                        fields.add(new Outbound.FieldSet(field, Json.object().numberNode(++value), Map.of("c", (long) value)));
                        expected.remove(field);
                        expected.put(field, value);
                    }
                }
                batches.add(Outbound.fieldBatch("d", fields));
            }
            java.util.LinkedHashMap<String, Integer> actual = new java.util.LinkedHashMap<>();
            Outbound.merged(batches).body().path("deltas").forEach(op -> actual.put(op.path("field").asText(), op.path("value").asInt()));
            assertEquals(List.copyOf(expected.entrySet()), List.copyOf(actual.entrySet()));
        }
    }

    private static List<Outbound.FieldSet> body(Map<String, Integer> first, String field, int value) {
        List<Outbound.FieldSet> fields = new java.util.ArrayList<>();
        first.forEach((f, v) -> fields.add(new Outbound.FieldSet(f, Json.object().numberNode(v), Map.of("c", 1L))));
        fields.add(new Outbound.FieldSet(field, Json.object().numberNode(value), Map.of("c", 2L)));
        return fields;
    }
}
