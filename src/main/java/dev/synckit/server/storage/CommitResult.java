package dev.synckit.server.storage;

/** What {@link StorageAdapter#commit} did. */
public sealed interface CommitResult {
    /** Stored. */
    record Applied() implements CommitResult {}

    /** The same client message was applied before; nothing was stored this time. */
    record Duplicate() implements CommitResult {}

    /** The stored document is newer than the write's base; nothing was stored. Recompute from {@code current}. */
    record Stale(StoredDocument current) implements CommitResult {}

    CommitResult APPLIED = new Applied();
    CommitResult DUPLICATE = new Duplicate();
}
