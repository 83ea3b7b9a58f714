package dev.synckit.server.storage;

import java.util.List;
import java.util.Optional;

/**
 * Durable home of documents (STORAGE.md §1, reshaped around what the sync core needs): a document's
 * field state, vector clock and text state are loaded whole, and every applied write is committed
 * atomically together with its delta rows. Implementations are thread-safe; calls block (callers run
 * on virtual threads).
 */
public interface StorageAdapter extends AutoCloseable {

    /** The stored document, or empty if it was never written. */
    Optional<StoredDocument> load(String documentId) throws StorageException;

    /**
     * Commits one write: the new field values, the document clock, the text state if any, one delta row
     * per field change and the client message id. Either all of it is stored or none of it (on an
     * exception, a duplicate, or a stale base sequence).
     */
    CommitResult commit(DocumentWrite write) throws StorageException;

    /** The stored sequence number of a document (0 if it does not exist), to detect a stale cache. */
    long currentSeq(String documentId) throws StorageException;

    /** Deltas of a document with a sequence number above {@code afterSeq}, oldest first, at most {@code limit}. */
    List<StoredDelta> deltasSince(String documentId, long afterSeq, int limit) throws StorageException;

    /** Documents ordered by last update, newest first. */
    List<DocumentSummary> list(int limit, int offset) throws StorageException;

    /** Removes a document with its clock and deltas; true if it existed. */
    boolean delete(String documentId) throws StorageException;

    /** True if the store answers right now; never throws. */
    boolean healthy();

    /** A short name for logs and health output. */
    String describe();

    @Override
    void close();
}
