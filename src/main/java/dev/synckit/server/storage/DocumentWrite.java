package dev.synckit.server.storage;

import java.util.List;
import java.util.Map;

/**
 * One applied write message. {@code deltas} hold consecutive sequence numbers following the document's
 * previous {@code seq}; {@code clock} is the whole new document clock; {@code text} is null when the write
 * did not touch the text state.
 */
public record DocumentWrite(String documentId, List<StoredDelta> deltas, Map<String, Long> clock, TextState text,
                            long timestamp) {
    /** The sequence number of the document after this write. */
    public long lastSeq(long previous) {
        return deltas.isEmpty() ? previous : deltas.getLast().seq();
    }
}
