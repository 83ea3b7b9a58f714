package dev.synckit.server.sync;

import dev.synckit.server.protocol.Outbound;

/** A connected client as the sync core sees it. {@link #send} never blocks: it queues. */
public interface Peer {
    /** The connection id ({@code conn-N}), unique within this server process. */
    String id();

    void send(Outbound message);

    /** Remembers a subscription so that it can be released when the peer goes away. */
    void subscribed(String documentId);

    void unsubscribed(String documentId);

    /**
     * A writer with no connection behind it (an HTTP request, a write forwarded from another instance): it
     * subscribes to nothing, and its answer reaches the caller through the write's {@code settled} callback.
     */
    static Peer detached(String id) {
        return new Detached(id);
    }

    /**
     * Whether this peer applies a {@code delta_batch} of field {@code set} ops like one {@code delta} per field: known
     * for SDK clients only, so anything else (the upstream test client understands {@code delta} alone) gets deltas.
     */
    default boolean takesBatches() {
        return false;
    }

    /** Whether this peer has written as the given SDK client id (so it already applied that client's ops). */
    default boolean speaksFor(String clientId) {
        return false;
    }

    record Detached(String id) implements Peer {
        @Override
        public void send(Outbound message) {
        }

        @Override
        public void subscribed(String documentId) {
        }

        @Override
        public void unsubscribed(String documentId) {
        }
    }
}
