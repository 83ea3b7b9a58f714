package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;

/** One field change as applied; {@code value} is null for a delete. {@code writer} is the writing connection. */
public record StoredDelta(long seq, String field, JsonNode value, String writer, long timestamp) {
    public boolean isDelete() {
        return value == null;
    }
}
