package dev.synckit.server.crdt;

/** A state or operation that cannot be merged: malformed, out of bounds, or contradicting what is stored. */
public final class CrdtException extends Exception {
    public CrdtException(String message) {
        super(message);
    }
}
