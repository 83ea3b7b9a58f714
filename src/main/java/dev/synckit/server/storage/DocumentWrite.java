package dev.synckit.server.storage;

import dev.synckit.server.crdt.DataTypes;

import java.util.List;
import java.util.Map;

/**
 * One applied write message. {@code baseSeq} is the document sequence the write was computed from; the
 * store refuses it if the stored document has moved on (another instance wrote). {@code deltas} hold
 * consecutive sequence numbers after it; {@code clock} is the whole new document clock; {@code text} is
 * null when the write did not touch the text state, and {@code types} (the whole counter/set/format state after the write) null
 * when it did not touch those. When both {@code clientId} and {@code messageId} are
 * set, the store applies a given pair at most once per document. {@code fence} is the writer's ownership
 * epoch ({@link StorageAdapter#claim}): the store refuses the write ({@link CommitResult.Fenced}) unless it is
 * still the document's epoch; 0 means an unfenced write (one instance alone, or no Redis to hold leases).
 */
public record DocumentWrite(String documentId, long baseSeq, List<StoredDelta> deltas, Map<String, Long> clock,
                            TextState text, DataTypes types, long timestamp, String clientId, String messageId, long fence) {
    public DocumentWrite(String documentId, long baseSeq, List<StoredDelta> deltas, Map<String, Long> clock,
                         TextState text, long timestamp, String clientId, String messageId, long fence) {
        this(documentId, baseSeq, deltas, clock, text, null, timestamp, clientId, messageId, fence);
    }

    public DocumentWrite(String documentId, long baseSeq, List<StoredDelta> deltas, Map<String, Long> clock,
                         TextState text, long timestamp, String clientId, String messageId) {
        this(documentId, baseSeq, deltas, clock, text, null, timestamp, clientId, messageId, 0);
    }

    /**
     * The sequence number of the document after this write. A write that changes only the text or data
     * types still takes a number of its own, or other instances would take its announcement for one they
     * already have and drop it.
     */
    public long lastSeq() {
        if (!deltas.isEmpty()) {
            return deltas.getLast().seq();
        }
        return text != null || types != null ? baseSeq + 1 : baseSeq;
    }

    public boolean deduplicated() {
        return clientId != null && messageId != null;
    }
}
