package dev.synckit.server.storage;

/**
 * A write was refused because it carried an ownership epoch that is no longer the document's: another
 * instance claimed the document after this one. Nothing was stored; the write may be sent to the new owner.
 */
public final class FencedException extends StorageException {
    public FencedException(String documentId, long fence, long current) {
        super("write to " + documentId + " refused: ownership epoch " + fence + " is stale (now " + current + ")", null);
    }
}
