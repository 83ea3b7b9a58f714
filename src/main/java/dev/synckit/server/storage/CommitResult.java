package dev.synckit.server.storage;

/** What {@link StorageAdapter#commit} did. */
public sealed interface CommitResult {
    /**
     * Stored {@code write}. If the stored document had moved on (another instance wrote), the write was
     * recomputed onto it under the store's lock and {@code rebasedOnto} is that document; otherwise null.
     */
    record Applied(DocumentWrite write, StoredDocument rebasedOnto) implements CommitResult {}

    /** The same client message was applied before; nothing was stored this time. */
    record Duplicate() implements CommitResult {}

    /**
     * Refused: the write carried an ownership epoch that is no longer the document's (another instance has
     * claimed the document since). Nothing was stored.
     */
    record Fenced(long fence, long current) implements CommitResult {}

    CommitResult DUPLICATE = new Duplicate();
}
