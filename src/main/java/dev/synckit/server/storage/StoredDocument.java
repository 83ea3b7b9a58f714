package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.crdt.DataTypes;

import java.util.Map;

/**
 * A document as stored: live fields (deleted ones absent), the vector clock, the last applied delta
 * sequence number, the text-CRDT state if the document carries one, its counter/set/format state
 * ({@link DataTypes#NONE} if none), and the last update time (epoch ms).
 * Maps are immutable.
 */
public record StoredDocument(String id, Map<String, JsonNode> fields, Map<String, Long> clock, long seq,
                             TextState text, DataTypes types, long updatedAt) {
    public StoredDocument {
        types = types == null ? DataTypes.NONE : types;
    }

    public StoredDocument(String id, Map<String, JsonNode> fields, Map<String, Long> clock, long seq, TextState text,
                          long updatedAt) {
        this(id, fields, clock, seq, text, DataTypes.NONE, updatedAt);
    }

    public static StoredDocument empty(String id) {
        return new StoredDocument(id, Map.of(), Map.of(), 0, null, DataTypes.NONE, 0);
    }
}
