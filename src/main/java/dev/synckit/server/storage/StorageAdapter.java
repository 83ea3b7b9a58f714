package dev.synckit.server.storage;

import java.util.List;
import java.util.Optional;

/**
 * Durable home of documents (STORAGE.md §1, reshaped around what the sync core needs): a document's
 * field state, vector clock and text state are loaded whole, and every applied write is committed
 * atomically. The stored clock is the clock of the last write: the sync core gives each write the whole
 * document clock, compacted. Implementations are thread-safe; calls block (callers run
 * on virtual threads).
 */
public interface StorageAdapter extends AutoCloseable {

    /** The stored document, or empty if it was never written. */
    Optional<StoredDocument> load(String documentId) throws StorageException;

    /** Recomputes a write for the document it will actually apply to. */
    @FunctionalInterface
    interface Rebase {
        DocumentWrite onto(StoredDocument current);
    }

    /**
     * Commits one write: the new field values, the document clock (replacing the stored one), the text
     * state if any and the client message id, all or nothing. Writes to a document are serialised by
     * the store; if the stored sequence is not {@code write.baseSeq()} (another instance wrote), the write is
     * recomputed with {@code rebase} while the document stays locked, so a busy document cannot starve a
     * writer. A client message already applied is reported as a duplicate and not stored again.
     */
    CommitResult commit(DocumentWrite write, Rebase rebase) throws StorageException;

    /** Receives the outcome of {@link #submit}: a result, or the error that kept the write from being stored. */
    @FunctionalInterface
    interface Outcome {
        void committed(CommitResult result, StorageException error);
    }

    /**
     * Like {@link #commit}, but may return before the write is durable; {@code done} is then called exactly
     * once, on whatever thread finished the commit. Writes submitted for one document are committed in
     * submission order, so a caller can keep several in flight per document, each computed on top of the
     * one before (a write whose predecessor failed is rebased like any other). Stores that commit
     * synchronously call {@code done} before returning.
     */
    default void submit(DocumentWrite write, Rebase rebase, Outcome done) {
        CommitResult result;
        try {
            result = commit(write, rebase);
        } catch (StorageException e) {
            done.committed(null, e);
            return;
        }
        done.committed(result, null);
    }

    /**
     * Makes the caller the document's only fenced writer: raises and returns the document's ownership epoch,
     * under the same lock that orders its commits, so every write carrying an older epoch is refused from
     * now on ({@link CommitResult.Fenced}). Called by an instance that has just acquired the document's lease.
     */
    long claim(String documentId) throws StorageException;

    /** The stored sequence number of a document (0 if it does not exist), to detect a stale cache. */
    long currentSeq(String documentId) throws StorageException;

    /**
     * Up to {@code limit} documents whose id starts with {@code prefix} and sorts after {@code after} (null: from
     * the start), in id order, so that a listing can be paged with the last id as cursor while documents
     * change. A document without fields, text or data types (never written, or every field deleted) is not listed.
     */
    List<DocumentSummary> list(String prefix, String after, int limit) throws StorageException;

    /** Copies the document's committed fields and clock into a new snapshot; empty if the document does not exist. */
    Optional<Snapshot> saveSnapshot(String documentId) throws StorageException;

    /** A snapshot by id; empty if there is none (an id that is not one this store makes included). */
    Optional<Snapshot> snapshot(String snapshotId) throws StorageException;

    /** The document's snapshots, newest first, at most {@code limit}. */
    List<Snapshot> snapshots(String documentId, int limit) throws StorageException;

    /** Removes a snapshot; true if it existed. */
    boolean deleteSnapshot(String snapshotId) throws StorageException;

    /** Removes a document with its clock and deltas; true if it existed. */
    boolean delete(String documentId) throws StorageException;

    /** Rows removed by {@link #cleanup}; {@code skipped} if another instance was cleaning up, so this one did not. */
    record Cleanup(long deltas, long appliedMessages, long sessions, boolean skipped) {}

    /**
     * Deletes deltas and applied message ids older than {@code deltaRetention} and sessions not seen for
     * {@code sessionRetention}. A zero duration skips that part. Instances sharing a store take turns: a
     * call while another instance cleans up returns at once, {@code skipped}.
     */
    Cleanup cleanup(java.time.Duration deltaRetention, java.time.Duration sessionRetention) throws StorageException;

    /** Empty if the store can make writes durable right now, else what is wrong; never throws. */
    default Optional<String> probe() {
        return healthy() ? Optional.empty() : Optional.of("not reachable");
    }

    /** True if the store answers right now; never throws. */
    boolean healthy();

    /** A short name for logs and health output. */
    String describe();

    @Override
    void close();
}
