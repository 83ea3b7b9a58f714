package dev.synckit.server.protocol;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.List;
import java.util.Map;

/**
 * Every message a client may send (PROTOCOL.md §5). {@code id} is the client's message id when it sent
 * one; the SDK usually does not, so it may be null.
 */
public sealed interface Message {
    String id();

    record Auth(String id, String token, String apiKey) implements Message {}

    record Subscribe(String id, String documentId) implements Message {}

    record Unsubscribe(String id, String documentId) implements Message {}

    record SyncRequest(String id, String documentId, Map<String, Long> vectorClock) implements Message {}

    /** Upstream stub (§5.19); answered with an empty {@code sync_step2}. */
    record SyncStep1(String id, String documentId) implements Message {}

    /** Both inbound {@code delta} shapes (§5.8) normalised to field changes in message order. */
    /** {@code clientId} is the writer's stable client id when it sent one (for retry de-duplication). */
    record Delta(String id, String documentId, List<FieldChange> changes, Map<String, Long> clock,
                 String clientId, String messageId) implements Message {}

    /** {@code clientId} is the first client id found on an operation (the SDK puts its id on every op). */
    record DeltaBatch(String id, String documentId, List<Operation> operations, String clientId, String messageId)
            implements Message {}

    record DeltaBatchChunk(String id, String chunkId, int totalChunks, int chunkIndex, byte[] data)
            implements Message {}

    record Ack(String id, String messageId) implements Message {}

    record AwarenessSubscribe(String id, String documentId) implements Message {}

    /** {@code state} is null when the presence owner left. */
    record AwarenessUpdate(String id, String documentId, String clientId, JsonNode state, long clock)
            implements Message {}

    record Ping(String id) implements Message {}

    record Pong(String id) implements Message {}

    /** JSON-only greeting some clients send; accepted and ignored. */
    record Connect(String id) implements Message {}

    /** The wire marker of a deleted field: {@code {"__deleted": true}}. Callers must not modify it. */
    JsonNode TOMBSTONE = Json.object().put("__deleted", true);

    static boolean isTombstone(JsonNode value) {
        return value.isObject() && value.path("__deleted").isBoolean() && value.get("__deleted").booleanValue();
    }

    /** One field write; a value of {@code {"__deleted": true}} is a delete. */
    record FieldChange(String field, JsonNode value) {
        public boolean isDelete() {
            return isTombstone(value);
        }
    }

    /** One operation of a {@code delta_batch} (§5.10). */
    sealed interface Operation {
        /** An LWW field write ({@code set} with a {@code field}). */
        record Set(FieldChange change, Map<String, Long> clock) implements Operation {}

        /** A {@code text-state} or legacy {@code text} op, relayed to the other subscribers. */
        record Text(com.fasterxml.jackson.databind.node.ObjectNode raw) implements Operation {}

        /** A counter, set (no {@code field}) or rich-text format op, checked and normalised ({@code DataTypes.check}). */
        record Typed(com.fasterxml.jackson.databind.node.ObjectNode op) implements Operation {}

        /** An op of a type nobody defines: acknowledged and otherwise ignored, as upstream does. */
        record Other(JsonNode raw) implements Operation {}
    }
}
