package dev.synckit.server.cluster;

import dev.synckit.server.meters.Meters;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.storage.StorageException;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Which instance orders and commits each document's writes. This instance owns a document while it holds
 * the document's Redis lease and has claimed it in storage (the epoch its commits carry); it trusts its
 * ownership only until a lease term after the last successful renewal started, which is never later than
 * Redis lets the key live. When Redis cannot be asked, {@link #route} says {@link Route.Unfenced}: the
 * instance then commits through the row lock like a single instance, which is always correct.
 */
final class Ownership {
    private static final Logger LOG = Logger.getLogger(Ownership.class.getName());

    /** Where a write to a document goes. */
    sealed interface Route {
        /** This instance owns it: commit here with this epoch. */
        record Local(long fence) implements Route {}

        /** Another instance owns it: forward there. */
        record Remote(String instanceId) implements Route {}

        /** Ownership is unknown (Redis unreachable, or draining): commit here through the row lock, unfenced. */
        record Unfenced() implements Route {}
    }

    private static final Route UNFENCED = new Route.Unfenced();

    /** An owned document: its epoch, until when the lease is trusted, and its last write. */
    private static final class Owned {
        final long fence;
        volatile long trustedUntil;
        volatile long lastUsed;

        Owned(long fence, long trustedUntil) {
            this.fence = fence;
            this.trustedUntil = trustedUntil;
            this.lastUsed = System.nanoTime();
        }
    }

    /** Another instance's lease, as last read; re-read after a lease term or when that instance says it moved. */
    private record Hint(String instanceId, long readAt) {}

    private final Leases leases;
    private final StorageAdapter storage;
    private final String me;
    private final long leaseNanos;
    private final long idleNanos;
    private final ConcurrentHashMap<String, Owned> owned = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Hint> hints = new ConcurrentHashMap<>();
    /** Striped: resolving a document (lease, then claim) happens once at a time, or two claims would fence each other. */
    private final ReentrantLock[] resolving = new ReentrantLock[64];
    private volatile boolean draining;
    /**
     * After Redis failed to answer, it is not asked again for a second: every write would otherwise wait out
     * the Redis timeout before committing unfenced.
     */
    private volatile long redisRetryAt;
    private static final long REDIS_RETRY_NANOS = 1_000_000_000L;

    Ownership(Leases leases, StorageAdapter storage, String me, Duration lease, Duration idleRelease) {
        this.leases = leases;
        this.storage = storage;
        this.me = me;
        this.leaseNanos = lease.toNanos();
        this.idleNanos = idleRelease.toNanos();
        this.redisRetryAt = System.nanoTime(); // nanoTime has an arbitrary origin: 0 could lie in the future
        for (int i = 0; i < resolving.length; i++) {
            resolving[i] = new ReentrantLock();
        }
    }

    String instanceId() {
        return me;
    }

    int ownedCount() {
        return owned.size();
    }

    /** The epoch to commit a forwarded write with, if this instance owns the document right now; else -1. */
    long fenceIfOwned(String documentId) {
        Owned o = owned.get(documentId);
        if (o == null || draining || System.nanoTime() - o.trustedUntil > 0) {
            return -1;
        }
        o.lastUsed = System.nanoTime();
        return o.fence;
    }

    /**
     * Decides where a write goes, taking the lease if nobody holds it (then claiming the document in storage,
     * which fences every earlier owner). Blocks for a Redis round trip or two on a document not seen lately.
     */
    Route route(String documentId) {
        long fence = fenceIfOwned(documentId);
        if (fence > 0) {
            return new Route.Local(fence);
        }
        if (draining) {
            return UNFENCED;
        }
        Hint hint = hints.get(documentId);
        if (hint != null && System.nanoTime() - hint.readAt < leaseNanos) {
            return new Route.Remote(hint.instanceId);
        }
        ReentrantLock lock = resolving[Math.floorMod(documentId.hashCode(), resolving.length)];
        lock.lock();
        try {
            fence = fenceIfOwned(documentId); // resolved by another thread meanwhile
            if (fence > 0) {
                return new Route.Local(fence);
            }
            return resolve(documentId);
        } finally {
            lock.unlock();
        }
    }

    private Route resolve(String documentId) {
        long started = System.nanoTime();
        if (started - redisRetryAt < 0) {
            return UNFENCED;
        }
        try {
            if (leases.acquire(documentId)) {
                long epoch;
                try {
                    epoch = storage.claim(documentId);
                } catch (StorageException e) {
                    // Without a claim this instance cannot fence anyone; do not keep the others waiting on it.
                    leases.release(List.of(documentId));
                    LOG.log(Level.FINE, "claiming " + documentId + " failed; committing unfenced", e);
                    return UNFENCED;
                }
                owned.put(documentId, new Owned(epoch, started + leaseNanos));
                hints.remove(documentId);
                Meters.ownershipAcquired();
                return new Route.Local(epoch);
            }
            String holder = leases.holder(documentId);
            if (holder == null) {
                return resolve(documentId); // released between our two commands: try to take it
            }
            hints.put(documentId, new Hint(holder, System.nanoTime()));
            return new Route.Remote(holder);
        } catch (RuntimeException e) {
            redisRetryAt = System.nanoTime() + REDIS_RETRY_NANOS;
            LOG.log(Level.FINE, "resolving the owner of " + documentId + " failed; committing unfenced", e);
            return UNFENCED;
        }
    }

    /** The instance Redis names as the document's owner right now; null if none, or Redis cannot tell. */
    String holder(String documentId) {
        try {
            return leases.holder(documentId);
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The owner we forwarded to says it is not (or no longer) the owner, or did not answer: ask Redis again. */
    void forgetHint(String documentId, String instanceId) {
        hints.computeIfPresent(documentId, (k, h) -> h.instanceId.equals(instanceId) ? null : h);
    }

    /** Storage refused one of our commits: someone else claimed the document, so we no longer own it. */
    void fenced(String documentId, long fence) {
        Owned o = owned.get(documentId);
        if (o != null && o.fence == fence && owned.remove(documentId, o)) {
            Meters.ownershipLost("fenced");
            LOG.info(() -> "lost ownership of " + documentId + ": another instance claimed it (epoch " + fence + " fenced)");
        }
    }

    /**
     * One renewal round (every third of the lease): leases still ours are extended and trusted for another
     * term counted from before the round trip; lost ones are dropped; idle ones are released.
     */
    void renew() {
        if (owned.isEmpty()) {
            return;
        }
        long started = System.nanoTime();
        List<String> idle = new ArrayList<>();
        List<String> active = new ArrayList<>();
        for (Map.Entry<String, Owned> e : owned.entrySet()) {
            (started - e.getValue().lastUsed > idleNanos ? idle : active).add(e.getKey());
        }
        release(idle, "released");
        List<String> lost;
        try {
            lost = leases.renew(active);
        } catch (RuntimeException e) {
            LOG.log(Level.FINE, "renewing " + active.size() + " leases failed", e);
            return; // trusted until the old term ends; then writes fall back to unfenced commits
        }
        for (String id : lost) {
            if (owned.remove(id) != null) {
                Meters.ownershipLost("lost");
                LOG.info(() -> "lost the lease of " + id + " (expired before it was renewed)");
            }
        }
        for (String id : active) {
            Owned o = owned.get(id);
            if (o != null && !lost.contains(id)) {
                o.trustedUntil = started + leaseNanos;
            }
        }
    }

    /** Stops owning: no document routes here any more, and the leases go at once so others take over. */
    void drain() {
        draining = true;
        release(new ArrayList<>(owned.keySet()), "released");
    }

    private void release(List<String> documentIds, String why) {
        if (documentIds.isEmpty()) {
            return;
        }
        // Dropped here first: a write routed after this resolves again instead of committing as owner.
        documentIds.forEach(id -> {
            if (owned.remove(id) != null) {
                Meters.ownershipLost(why);
            }
        });
        try {
            leases.release(documentIds);
        } catch (RuntimeException e) {
            LOG.log(Level.FINE, "releasing " + documentIds.size() + " leases failed (they expire on their own)", e);
        }
    }
}
