package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An SDK-shaped client (binary, no auth, {@code subscribe}, {@code delta_batch}, LWW register ordered by
 * {@code max(clock)} like the SDK core) and an upstream-test-client-shaped one (binary, token-less
 * {@code auth}, {@code sync_request}, {@code delta}, acking every broadcast) write the same fields
 * concurrently and must end with the server's state.
 */
class ConvergenceTest {
    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start();
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    /** The SDK's per-field register: (logical time, writer id, value); remote values come as (max(clock), "server"). */
    private static final class SdkReplica {
        record Register(long time, String writer, JsonNode value) {}

        final String clientId = "client-" + Long.toString(System.nanoTime(), 36);
        final Map<String, Long> clock = new HashMap<>();
        final Map<String, Register> fields = new HashMap<>();

        ObjectNode localSet(String documentId, String field, JsonNode value) {
            long counter = clock.merge(clientId, 1L, Long::sum);
            apply(field, new Register(counter, clientId, value));
            ObjectNode op = Json.object().put("type", "set").put("documentId", documentId).put("field", field)
                    .put("clientId", clientId).put("timestamp", System.currentTimeMillis());
            op.set("value", value);
            ObjectNode c = op.putObject("clock");
            clock.forEach(c::put);
            return op;
        }

        void remote(String field, JsonNode value, JsonNode clockNode) {
            long max = 0;
            for (JsonNode v : clockNode) {
                max = Math.max(max, v.asLong());
            }
            assertTrue(clockNode.size() > 0, "broadcast clock must never be empty");
            clockNode.fields().forEachRemaining(e -> clock.merge(e.getKey(), e.getValue().asLong(), Math::max));
            apply(field, new Register(max, "server", value));
        }

        private void apply(String field, Register incoming) {
            Register current = fields.get(field);
            if (current == null || incoming.time > current.time
                    || (incoming.time == current.time && incoming.writer.compareTo(current.writer) > 0)
                    || (incoming.time == current.time && incoming.writer.equals(current.writer)
                    && incoming.value.toString().compareTo(current.value.toString()) > 0)) {
                fields.put(field, incoming);
            }
        }

        Map<String, JsonNode> state() {
            Map<String, JsonNode> out = new TreeMap<>();
            fields.forEach((k, r) -> {
                if (!(r.value.isObject() && r.value.path("__deleted").asBoolean())) {
                    out.put(k, r.value);
                }
            });
            return out;
        }
    }

    @Test
    void sdkClientAndTestClientConverge() {
        String doc = "converge-" + System.nanoTime();
        int rounds = 60;
        try (WsClient sdk = WsClient.binary(server.wsUri()); WsClient tester = WsClient.binary(server.wsUri())) {
            SdkReplica replica = new SdkReplica();
            sdk.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
            assertEquals(0, sdk.await("sync_response", r -> doc.equals(r.text("documentId"))).payload().get("state").size());

            assertEquals("anonymous", tester.authAnonymously().text("userId"));
            tester.send(MessageType.SYNC_REQUEST, Json.object().put("id", "sr-1").put("documentId", doc));
            tester.await("sync_response", r -> "sr-1".equals(r.text("requestId")));
            Map<String, JsonNode> testerState = new TreeMap<>();

            for (int i = 0; i < rounds; i++) {
                // Both write "shared"; each also owns a field; the tester deletes and recreates one.
                ObjectNode batch = Json.object().put("documentId", doc).put("messageId", "sdk-" + i);
                ArrayNode ops = batch.putArray("deltas");
                ops.add(replica.localSet(doc, "shared", Json.object().textNode("sdk-" + i)));
                ops.add(replica.localSet(doc, "sdkOwn", Json.object().numberNode(i)));
                sdk.send(MessageType.DELTA_BATCH, batch);

                ObjectNode delta = Json.object().put("id", "t-" + i).put("documentId", doc);
                ObjectNode d = delta.putObject("delta").put("shared", "tester-" + i).put("testerOwn", i);
                if (i % 3 == 0) {
                    d.putObject("flip").put("__deleted", true);
                } else {
                    d.put("flip", "on-" + i);
                }
                delta.putObject("vectorClock");
                tester.send(MessageType.DELTA, delta);
            }
            for (int i = 0; i < rounds; i++) {
                String sdkId = "sdk-" + i;
                String testerId = "t-" + i;
                sdk.await("ack", r -> sdkId.equals(r.text("messageId")));
                tester.await("ack", r -> testerId.equals(r.text("messageId")));
            }
            // A last marker from each: broadcasts of one document arrive in order, so once both markers are
            // in, every earlier broadcast is too.
            ObjectNode marker = Json.object().put("documentId", doc).put("messageId", "sdk-end");
            marker.putArray("deltas").add(replica.localSet(doc, "sdkDone", Json.object().booleanNode(true)));
            sdk.send(MessageType.DELTA_BATCH, marker);
            ObjectNode testerMarker = Json.object().put("id", "t-end").put("documentId", doc);
            testerMarker.putObject("delta").put("testerDone", true);
            tester.send(MessageType.DELTA, testerMarker);
            // The SDK client wrote with delta_batch, so its broadcasts come as batches; the tester's as deltas.
            for (WsClient c : new WsClient[] {sdk, tester}) {
                c.awaitField("sdkDone");
                c.awaitField("testerDone");
            }

            for (WsClient.Received r : sdk.pending()) {
                if (r.type().equals("delta")) { // before its first write reached the server
                    replica.remote(r.text("field"), r.payload().get("value"), r.payload().get("clock"));
                } else if (r.type().equals("delta_batch")) {
                    r.payload().path("deltas").forEach(op -> replica.remote(op.path("field").asText(), op.get("value"), op.get("clock")));
                }
            }
            replica.remote("sdkDone", Json.object().booleanNode(true), Json.object().put("x", Long.MAX_VALUE / 2));
            replica.remote("testerDone", Json.object().booleanNode(true), Json.object().put("x", Long.MAX_VALUE / 2));
            for (WsClient.Received r : tester.pending()) {
                if (r.type().equals("delta")) {
                    JsonNode value = r.payload().get("value");
                    if (value.isObject() && value.path("__deleted").asBoolean()) {
                        testerState.remove(r.text("field"));
                    } else {
                        testerState.put(r.text("field"), value);
                    }
                    tester.send(MessageType.ACK, Json.object().put("messageId", r.text("id")));
                }
            }
            testerState.put("sdkDone", Json.object().booleanNode(true));
            testerState.put("testerDone", Json.object().booleanNode(true));

            try (WsClient observer = WsClient.binary(server.wsUri())) {
                observer.send(MessageType.SYNC_REQUEST, Json.object().put("id", "final").put("documentId", doc));
                ObjectNode state = (ObjectNode) observer.await("sync_response").payload().get("state");
                Map<String, JsonNode> serverState = new TreeMap<>();
                state.fields().forEachRemaining(e -> serverState.put(e.getKey(), e.getValue()));
                assertEquals(serverState, replica.state(), "SDK-shaped replica diverged from the server");
                assertEquals(serverState, testerState, "test-client replica diverged from the server");
                assertEquals(Json.object().numberNode(rounds - 1), serverState.get("sdkOwn"));
                assertEquals(Json.object().numberNode(rounds - 1), serverState.get("testerOwn"));
            }
        }
    }
}
