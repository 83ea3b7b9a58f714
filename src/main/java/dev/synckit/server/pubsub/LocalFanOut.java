package dev.synckit.server.pubsub;

import dev.synckit.server.storage.DocumentWrite;

/** A single instance: there is nobody else to tell. */
public final class LocalFanOut implements FanOut {
    @Override
    public void publish(DocumentWrite write) {
    }

    @Override
    public void close() {
    }
}
