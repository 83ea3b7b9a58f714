package dev.synckit.server.pubsub;

import dev.synckit.server.storage.DocumentWrite;

/**
 * Carries committed writes to the other server instances. Local subscribers are served by the sync core
 * itself; this seam only exists for what crosses process boundaries.
 */
public interface FanOut extends AutoCloseable {
    /** Announces a write that is already committed to storage. Must not block for long. */
    void publish(DocumentWrite write);

    @Override
    void close();
}
