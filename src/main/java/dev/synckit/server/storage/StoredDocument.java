package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.Map;

/**
 * A document as stored: live fields (deleted ones absent), the vector clock, the last applied delta
 * sequence number, the text-CRDT state if the document carries one, and the last update time (epoch ms).
 * Maps are immutable.
 */
public record StoredDocument(String id, Map<String, JsonNode> fields, Map<String, Long> clock, long seq,
                             TextState text, long updatedAt) {
    public static StoredDocument empty(String id) {
        return new StoredDocument(id, Map.of(), Map.of(), 0, null, 0);
    }
}
