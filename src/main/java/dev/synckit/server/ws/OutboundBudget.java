package dev.synckit.server.ws;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Supplier;
import java.util.logging.Logger;

/**
 * What all connections together may hold in their outbound queues. Each connection is bounded on its own,
 * but 10,000 connections each just under their bound would still exhaust the heap; past this budget the
 * connections furthest behind are closed first (they resync when they reconnect) until the total is back
 * under 90 % of it, so clients that keep up are not punished for the slow ones.
 */
final class OutboundBudget {
    private static final Logger LOG = Logger.getLogger(OutboundBudget.class.getName());

    private final long limit;
    private final Supplier<Collection<Connection>> connections;
    private final AtomicLong queued = new AtomicLong();
    private final ReentrantLock shedding = new ReentrantLock();

    OutboundBudget(long limit, Supplier<Collection<Connection>> connections) {
        this.limit = limit;
        this.connections = connections;
    }

    /** Bytes entering (positive) or leaving (negative) some connection's queue. */
    void add(long bytes) {
        if (queued.addAndGet(bytes) > limit && bytes > 0) {
            shed();
        }
    }

    long queued() {
        return queued.get();
    }

    private void shed() {
        if (!shedding.tryLock()) {
            return; // another sender is already shedding
        }
        try {
            if (queued.get() <= limit) {
                return;
            }
            long target = limit / 10 * 9;
            List<Connection> furthestBehind = new ArrayList<>(connections.get());
            furthestBehind.sort(Comparator.comparingLong(Connection::queuedBytes).reversed());
            int closed = 0;
            for (Connection c : furthestBehind) {
                if (queued.get() <= target || c.queuedBytes() == 0) {
                    break;
                }
                c.shed();
                closed++;
            }
            int n = closed;
            LOG.warning(() -> "outbound queues reached synckit.limits.outbound-total-bytes (" + limit
                    + "); closed the " + n + " connection(s) furthest behind");
        } finally {
            shedding.unlock();
        }
    }
}
