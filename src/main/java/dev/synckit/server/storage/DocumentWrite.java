package dev.synckit.server.storage;

import java.util.List;
import java.util.Map;

/**
 * One applied write message. {@code baseSeq} is the document sequence the write was computed from; the
 * store refuses it if the stored document has moved on (another instance wrote). {@code deltas} hold
 * consecutive sequence numbers after it; {@code clock} is the whole new document clock; {@code text} is
 * null when the write did not touch the text state. When both {@code clientId} and {@code messageId} are
 * set, the store applies a given pair at most once per document. {@code fence} is the writer's ownership
 * epoch ({@link StorageAdapter#claim}): the store refuses the write ({@link CommitResult.Fenced}) unless it is
 * still the document's epoch; 0 means an unfenced write (one instance alone, or no Redis to hold leases).
 */
public record DocumentWrite(String documentId, long baseSeq, List<StoredDelta> deltas, Map<String, Long> clock,
                            TextState text, long timestamp, String clientId, String messageId, long fence) {
    public DocumentWrite(String documentId, long baseSeq, List<StoredDelta> deltas, Map<String, Long> clock,
                         TextState text, long timestamp, String clientId, String messageId) {
        this(documentId, baseSeq, deltas, clock, text, timestamp, clientId, messageId, 0);
    }

    /** The sequence number of the document after this write. */
    public long lastSeq() {
        return deltas.isEmpty() ? baseSeq : deltas.getLast().seq();
    }

    public boolean deduplicated() {
        return clientId != null && messageId != null;
    }
}
