package dev.synckit.server.ws;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Helidon hands over each WebSocket frame separately; this joins the fragments of one message and caps
 * its size. A message that grows past the cap is discarded up to its last fragment, then reported.
 */
final class FrameAssembler {
    /** The outcome of a fragment: nothing yet, a complete message, or an oversized one. */
    sealed interface Result {
        record Partial() implements Result {}

        record Complete(byte[] bytes, boolean text) implements Result {}

        record TooLarge(long bytes) implements Result {}
    }

    private static final Result PARTIAL = new Result.Partial();

    private final int maxBytes;
    private ByteArrayOutputStream buffer;
    private long discarded = -1;

    FrameAssembler(int maxBytes) {
        this.maxBytes = maxBytes;
    }

    Result text(String fragment, boolean last) {
        // Helidon decodes every text frame on its own; see docs/ARCHITECTURE.md on split UTF-8.
        return add(fragment.getBytes(StandardCharsets.UTF_8), last, true);
    }

    Result binary(byte[] fragment, boolean last) {
        return add(fragment, last, false);
    }

    private Result add(byte[] fragment, boolean last, boolean text) {
        if (discarded >= 0) {
            discarded += fragment.length;
            return last ? tooLarge() : PARTIAL;
        }
        if (buffer == null && last) {
            return fragment.length > maxBytes ? new Result.TooLarge(fragment.length) : new Result.Complete(fragment, text);
        }
        if (buffer == null) {
            buffer = new ByteArrayOutputStream(Math.min(maxBytes, Math.max(1024, fragment.length * 2)));
        }
        if ((long) buffer.size() + fragment.length > maxBytes) {
            discarded = buffer.size() + (long) fragment.length;
            buffer = null;
            return last ? tooLarge() : PARTIAL;
        }
        buffer.write(fragment, 0, fragment.length);
        if (!last) {
            return PARTIAL;
        }
        byte[] message = buffer.toByteArray();
        buffer = null;
        return new Result.Complete(message, text);
    }

    private Result tooLarge() {
        long size = discarded;
        discarded = -1;
        return new Result.TooLarge(size);
    }
}
