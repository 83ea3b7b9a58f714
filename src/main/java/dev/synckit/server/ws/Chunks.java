package dev.synckit.server.ws;

import dev.synckit.server.protocol.Message;
import dev.synckit.server.protocol.ProtocolException;

import java.io.ByteArrayOutputStream;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;

/**
 * Reassembles {@code delta_batch_chunk} messages (§5.12) of one connection. Bounded: a few chunk sets at a
 * time, the message-size cap in total, and incomplete sets are dropped after a timeout.
 */
final class Chunks {
    static final int MAX_OPEN_SETS = 8;
    static final long TIMEOUT_NANOS = 30_000_000_000L;

    private static final class ChunkSet {
        final byte[][] parts;
        final long startedAt;
        int received;
        long bytes;

        ChunkSet(int total, long now) {
            this.parts = new byte[total][];
            this.startedAt = now;
        }
    }

    private final int maxBytes;
    private final Map<String, ChunkSet> open = new HashMap<>();

    Chunks(int maxBytes) {
        this.maxBytes = maxBytes;
    }

    /** Adds a chunk; returns the whole message's bytes once every chunk is in, else null. */
    byte[] add(Message.DeltaBatchChunk chunk, long now) throws ProtocolException {
        expire(now);
        ChunkSet set = open.get(chunk.chunkId());
        if (set == null) {
            if (open.size() >= MAX_OPEN_SETS) {
                throw ProtocolException.invalidFormat("too many incomplete chunked messages");
            }
            set = new ChunkSet(chunk.totalChunks(), now);
            open.put(chunk.chunkId(), set);
        }
        if (set.parts.length != chunk.totalChunks()) {
            open.remove(chunk.chunkId());
            throw ProtocolException.invalidFormat("totalChunks changed within chunk set " + chunk.chunkId());
        }
        if (set.parts[chunk.chunkIndex()] == null) {
            set.received++;
        } else {
            set.bytes -= set.parts[chunk.chunkIndex()].length;
        }
        set.parts[chunk.chunkIndex()] = chunk.data();
        set.bytes += chunk.data().length;
        if (set.bytes > maxBytes) {
            open.remove(chunk.chunkId());
            throw new ProtocolException("Message too large (" + set.bytes + " bytes, max " + maxBytes + ")", "INVALID_MESSAGE");
        }
        if (set.received < set.parts.length) {
            return null;
        }
        open.remove(chunk.chunkId());
        ByteArrayOutputStream whole = new ByteArrayOutputStream((int) set.bytes);
        for (byte[] part : set.parts) {
            whole.write(part, 0, part.length);
        }
        return whole.toByteArray();
    }

    private void expire(long now) {
        for (Iterator<ChunkSet> it = open.values().iterator(); it.hasNext(); ) {
            if (now - it.next().startedAt > TIMEOUT_NANOS) {
                it.remove();
            }
        }
    }
}
