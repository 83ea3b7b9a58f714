package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.storage.CommitResult;

import java.util.List;
import java.util.function.Consumer;

/**
 * A write submitted to storage and not yet settled: who to acknowledge and tell when it is settled, and the
 * outcome once the store reports it. The outcome is written by the committing thread before {@link #done}
 * is set and read by the settling thread after seeing it set.
 */
final class PendingWrite {
    final Peer writer;
    final String ackId;
    final List<ObjectNode> typeOps;
    final Consumer<Exception> settled;
    private CommitResult result;
    private Exception error;
    private volatile boolean done;

    PendingWrite(Peer writer, String ackId, List<ObjectNode> typeOps, Consumer<Exception> settled) {
        this.writer = writer;
        this.ackId = ackId;
        this.typeOps = typeOps;
        this.settled = settled;
    }

    void complete(CommitResult result, Exception error) {
        this.result = result;
        this.error = error;
        this.done = true;
    }

    boolean done() {
        return done;
    }

    CommitResult result() {
        return result;
    }

    Exception error() {
        return error;
    }
}
