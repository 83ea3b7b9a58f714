package dev.synckit.server.ws;

import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * One connection's writes that were handed to the sync core and are not yet settled (acknowledged or
 * refused). A connection keeps reading while they commit, but only for more writes to the same
 * document, whose answers come back in order anyway; before anything else is handled or answered it
 * waits for them, so every reply still goes out in the order of the messages it answers, and a read
 * after a write sees that write.
 */
final class WritesInFlight {
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition none = lock.newCondition();
    private int count;
    private String documentId;

    /** Whether a write to {@code documentId} may go in without waiting for the ones in flight. */
    boolean mayFollow(String documentId) {
        lock.lock();
        try {
            return count == 0 || documentId.equals(this.documentId);
        } finally {
            lock.unlock();
        }
    }

    void begin(String documentId) {
        lock.lock();
        try {
            count++;
            this.documentId = documentId;
        } finally {
            lock.unlock();
        }
    }

    void end() {
        lock.lock();
        try {
            if (--count == 0) {
                documentId = null;
                none.signalAll();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Blocks until every write in flight is settled (each is bounded by the store's timeouts). */
    void awaitNone() {
        lock.lock();
        try {
            while (count > 0) {
                none.awaitUninterruptibly();
            }
        } finally {
            lock.unlock();
        }
    }
}
