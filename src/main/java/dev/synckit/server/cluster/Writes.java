package dev.synckit.server.cluster;

import dev.synckit.server.config.Settings;
import dev.synckit.server.meters.Meters;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.protocol.ProtocolException;
import dev.synckit.server.pubsub.RedisFanOut;
import dev.synckit.server.storage.FencedException;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.storage.StorageException;
import dev.synckit.server.sync.Documents;
import dev.synckit.server.sync.Peer;
import dev.synckit.server.sync.WriteRequest;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Where client writes go. Alone (no Redis, or ownership off) every write is committed here. In a cluster a
 * write to a document this instance owns is committed here with its epoch; one owned elsewhere is forwarded
 * to the owner, whose answer becomes the client's ack or error; with ownership unknown (Redis down) it is
 * committed here unfenced, through the row lock, as a lone instance would.
 *
 * <p>Forwarded writes wait in a per-document lane in send order until answered. When the owner does not
 * answer in time, answers that it is not the owner, or could not be reached, the lane's unanswered writes are
 * sent again, in order, to whoever owns the document then (perhaps this instance); the store applies each
 * client message id at most once, so a write the old owner did commit is only acknowledged again. New writes
 * queue behind a lane that is being re-sent, so a connection's writes keep their order across an owner change.
 */
public final class Writes implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Writes.class.getName());
    private static final long SWEEP_MILLIS = 10;
    /** How often a lane waiting for a slow owner asks Redis whether that instance still holds the lease. */
    private static final long HOLDER_CHECK_NANOS = 500_000_000L;

    private final Documents documents;
    private final Ownership ownership;
    private final Forwarding forwarding;
    private final long forwardTimeoutNanos;
    /** A write that has found no owner to commit it for this long fails (the client may retry it). */
    private final long giveUpNanos;
    private final long renewMillis;
    private final ConcurrentHashMap<String, Lane> lanes = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<Long, String> laneOf = new ConcurrentHashMap<>();
    private final AtomicLong rids = new AtomicLong();
    private volatile boolean closed;
    private final List<Thread> loops = new ArrayList<>();

    private Writes(Documents documents, Ownership ownership, Forwarding forwarding, Settings.Cluster settings) {
        this.documents = documents;
        this.ownership = ownership;
        this.forwarding = forwarding;
        this.forwardTimeoutNanos = settings == null ? 0 : settings.forwardTimeout().toNanos();
        this.giveUpNanos = settings == null ? 0 : settings.lease().toNanos() * 3 + forwardTimeoutNanos;
        this.renewMillis = settings == null ? 0 : Math.max(50, settings.lease().toMillis() / 3);
    }

    /** Every write committed here: a lone instance, or ownership switched off. */
    public static Writes local(Documents documents) {
        return new Writes(documents, null, null, null);
    }

    /** One owner per document among the instances sharing {@code storage} and this Redis. */
    public static Writes owned(Documents documents, StorageAdapter storage, RedisFanOut redis, Settings.Cluster settings) {
        Ownership ownership = new Ownership(new Leases(redis::client, redis.channelPrefix(), redis.instanceId(), settings.lease()),
                storage, redis.instanceId(), settings.lease(), settings.idleRelease());
        Writes[] self = new Writes[1];
        Forwarding forwarding = new Forwarding(redis::client, redis.channelPrefix(), redis.instanceId(), redis.timeout(),
                new Forwarding.Handler() {
            @Override
            public void writes(String from, List<Forwarding.Write> writes) {
                self[0].commitForwarded(from, writes);
            }

            @Override
            public void outcomes(List<Forwarding.Outcome> outcomes) {
                outcomes.forEach(self[0]::answered);
            }

            @Override
            public void unsent(List<Long> rids) {
                rids.forEach(rid -> self[0].resend(rid, false));
            }
        });
        self[0] = new Writes(documents, ownership, forwarding, settings);
        self[0].start();
        Meters.ownedDocuments(ownership::ownedCount);
        return self[0];
    }

    private void start() {
        forwarding.start();
        loops.add(Thread.ofVirtual().name("ownership-renewal").start(() -> every(renewMillis, () -> {
            forwarding.ensureSubscribed();
            ownership.renew();
        })));
        loops.add(Thread.ofVirtual().name("forward-retries").start(() -> every(SWEEP_MILLIS, this::sweep)));
    }

    private void every(long millis, Runnable task) {
        while (!closed) {
            try {
                Thread.sleep(millis);
            } catch (InterruptedException e) {
                return;
            }
            try {
                task.run();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, Thread.currentThread().getName() + " round failed", e);
            }
        }
    }

    /** This instance's id and the documents it owns, for {@code /health}; null when alone. */
    public record Status(String instanceId, int ownedDocuments) {}

    /** Client writes forwarded and not yet answered (what a drain waits for besides local commits). */
    public int unanswered() {
        return laneOf.size();
    }

    public Status status() {
        return ownership == null ? null : new Status(ownership.instanceId(), ownership.ownedCount());
    }

    // ---- a client's write ------------------------------------------------------------------------------

    /** A client write forwarded or waiting to be. */
    private static final class Entry {
        final long rid;
        final Peer writer;
        final boolean subscribeWriter;
        final WriteRequest request;
        final Consumer<Exception> settled;
        final long firstNanos = System.nanoTime();
        boolean sent;
        long sentNanos;
        long dueNanos;
        int attempts;
        /** Timeouts waited out on the current owner; each doubles the next wait. */
        int waits;

        Entry(long rid, Peer writer, boolean subscribeWriter, WriteRequest request, Consumer<Exception> settled) {
            this.rid = rid;
            this.writer = writer;
            this.subscribeWriter = subscribeWriter;
            this.request = request;
            this.settled = settled;
        }
    }

    /** A document's forwarded writes not yet answered, in send order, and the owner they went to. */
    private static final class Lane {
        final ReentrantLock lock = new ReentrantLock();
        final ArrayDeque<Entry> entries = new ArrayDeque<>();
        String owner;
        long holderCheckedNanos;
        boolean dead; // removed from the map: lock a fresh one

        boolean resending() {
            for (Entry e : entries) {
                if (!e.sent) {
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * Applies a client write as {@link Documents#write} does (same {@code settled} contract), wherever the
     * document's owner is.
     */
    public void write(Peer writer, boolean subscribeWriter, WriteRequest request, Consumer<Exception> settled)
            throws StorageException {
        if (ownership == null) {
            documents.write(writer, subscribeWriter, request, 0, settled);
            return;
        }
        dispatch(new Entry(rids.incrementAndGet(), writer, subscribeWriter, request, settled));
    }

    /**
     * Routes one client write. A write joins its document's lane when it goes to another instance, or when
     * earlier writes are still waiting there (it must not overtake them); it is sent at once unless the lane
     * is being re-sent or went to another owner, in which case the sweep sends it in order.
     */
    private void dispatch(Entry e) throws StorageException {
        String documentId = e.request.documentId();
        Ownership.Route route = ownership.route(documentId);
        String remote = route instanceof Ownership.Route.Remote r ? r.instanceId() : null;
        boolean[] queued = {false};
        if (remote != null || lanes.containsKey(documentId)) {
            joinIfReader(e);
            inLane(documentId, lane -> {
                if (remote == null && lane.entries.isEmpty()) {
                    return; // nothing ahead of it: committed here below
                }
                boolean sendNow = remote != null
                        && (lane.entries.isEmpty() || (!lane.resending() && remote.equals(lane.owner)));
                append(lane, e, sendNow ? remote : null);
                queued[0] = true;
            });
        }
        if (!queued[0]) {
            commitHere(e, route instanceof Ownership.Route.Local l ? l.fence() : 0);
        }
    }

    /** Runs {@code action} under the lock of the document's live lane, creating one if needed. */
    private void inLane(String documentId, Consumer<Lane> action) {
        while (true) {
            Lane lane = lanes.computeIfAbsent(documentId, k -> new Lane());
            lane.lock.lock();
            try {
                if (!lane.dead) {
                    action.accept(lane);
                    return;
                }
            } finally {
                lane.lock.unlock();
            }
        }
    }

    /** Under the lane lock: adds the write at the end, sent now to {@code owner}, or (null) waiting for the sweep. */
    private void append(Lane lane, Entry e, String owner) {
        if (owner != null) {
            send(lane, e, owner);
        } else {
            e.sent = false;
            e.dueNanos = System.nanoTime();
        }
        lane.entries.add(e);
        laneOf.put(e.rid, e.request.documentId());
    }

    private void joinIfReader(Entry e) throws StorageException {
        if (e.subscribeWriter && e.attempts == 0) {
            documents.join(e.writer, e.request.documentId());
        }
    }

    /** Under the lane lock. */
    private void send(Lane lane, Entry e, String owner) {
        if (!owner.equals(lane.owner)) {
            e.waits = 0;
        }
        lane.owner = owner;
        e.sent = true;
        e.sentNanos = System.nanoTime();
        forwarding.send(owner, new Forwarding.Write(e.rid, e.request));
    }

    /** Commits here, as owner ({@code fence} > 0) or unfenced; a fenced refusal sends the write to the new owner. */
    private void commitHere(Entry e, long fence) throws StorageException {
        documents.write(e.writer, e.subscribeWriter && e.attempts == 0, e.request, fence, error -> {
            if (error instanceof FencedException) {
                ownership.fenced(e.request.documentId(), fence);
                e.attempts++;
                queueForResend(e);
            } else {
                e.settled.accept(error);
            }
        });
    }

    /** A write fenced here joins its document's lane to be sent to the new owner (in settle order). */
    private void queueForResend(Entry e) {
        inLane(e.request.documentId(), lane -> append(lane, e, null));
    }

    // ---- answers and re-sending ------------------------------------------------------------------------

    private void answered(Forwarding.Outcome outcome) {
        if (outcome.status() == Forwarding.Status.MOVED) {
            resend(outcome.rid(), true);
            return;
        }
        String documentId = laneOf.remove(outcome.rid());
        Lane lane = documentId == null ? null : lanes.get(documentId);
        if (lane == null) {
            return; // answered before (a duplicate answer to a re-sent write)
        }
        Entry done = null;
        lane.lock.lock();
        try {
            for (var it = lane.entries.iterator(); it.hasNext(); ) {
                Entry e = it.next();
                if (e.rid == outcome.rid()) {
                    it.remove();
                    done = e;
                    break;
                }
            }
            retireIfEmpty(documentId, lane);
        } finally {
            lane.lock.unlock();
        }
        if (done == null) {
            return;
        }
        if (outcome.status() == Forwarding.Status.OK) {
            Meters.forwarded(System.nanoTime() - done.firstNanos);
            if (done.request.ackId() != null) {
                done.writer.send(Outbound.ack(done.request.ackId()));
            }
            done.settled.accept(null);
        } else if (outcome.code() != null) {
            done.settled.accept(new ProtocolException(outcome.error(), outcome.code()));
        } else {
            done.settled.accept(new StorageException(outcome.error(), null));
        }
    }

    /** Under the lane lock: an empty lane leaves the map, so the next write routes afresh. */
    private void retireIfEmpty(String documentId, Lane lane) {
        if (lane.entries.isEmpty()) {
            lane.dead = true;
            lanes.remove(documentId, lane);
        }
    }

    /**
     * The owner refused a write (moved) or it could not be sent: every write of its lane still out is sent
     * again, in order, once the owner is known again. {@code moved}: the owner said so; back off a little,
     * since it may still hold the lease for a moment while it drains.
     */
    private void resend(long rid, boolean moved) {
        String documentId = laneOf.get(rid);
        Lane lane = documentId == null ? null : lanes.get(documentId);
        if (lane == null) {
            return;
        }
        lane.lock.lock();
        try {
            boolean found = false;
            for (Entry e : lane.entries) {
                found |= e.rid == rid && e.sent;
            }
            if (found) {
                requeueSent(documentId, lane, moved ? 20_000_000L : 0);
            }
        } finally {
            lane.lock.unlock();
        }
    }

    /** Under the lane lock: everything out to the lane's owner goes back to waiting, in order. */
    private void requeueSent(String documentId, Lane lane, long delayNanos) {
        if (lane.owner != null) {
            ownership.forgetHint(documentId, lane.owner);
        }
        long due = System.nanoTime() + delayNanos;
        for (Entry e : lane.entries) {
            if (e.sent) {
                e.sent = false;
                e.attempts++;
                e.dueNanos = due;
                Meters.forwardRetried();
            }
        }
        lane.owner = null;
    }

    /**
     * Under the lane lock: the owner has not answered in time. If Redis still names it the owner it is alive
     * (it renews its lease) and only slow: waiting longer, with each further timeout twice as long, beats
     * sending everything again, which under overload doubles its work just when it is behind. The first
     * timeout only waits; later ones also re-send (a message may have been lost, and the owner applies each
     * message id at most once). Another owner, or none: everything goes to whoever owns the document now.
     */
    private void timedOut(String documentId, Lane lane, long now) {
        String holder = ownership.holder(documentId);
        if (holder != null && holder.equals(lane.owner)) {
            boolean resend = false;
            for (Entry e : lane.entries) {
                if (e.sent) {
                    resend |= e.waits > 0;
                    e.waits++;
                    e.sentNanos = now;
                }
            }
            if (resend) {
                LOG.fine(() -> "no answer from " + lane.owner + " for writes to " + documentId + "; sending them again");
                for (Entry e : lane.entries) {
                    if (e.sent) {
                        Meters.forwardRetried();
                        forwarding.send(lane.owner, new Forwarding.Write(e.rid, e.request));
                    }
                }
            }
            return;
        }
        LOG.fine(() -> "no answer from " + lane.owner + " for a write to " + documentId + ", which Redis says is owned by "
                + holder + "; sending to the owner");
        requeueSent(documentId, lane, 0);
    }

    /** Every few milliseconds: time out unanswered writes, re-send waiting ones, give up on hopeless ones. */
    private void sweep() {
        long now = System.nanoTime();
        for (var entry : lanes.entrySet()) {
            String documentId = entry.getKey();
            Lane lane = entry.getValue();
            List<Entry> local = new ArrayList<>();
            List<Entry> failed = new ArrayList<>();
            Ownership.Route[] route = {null};
            lane.lock.lock();
            try {
                if (lane.dead) {
                    continue;
                }
                for (Entry e : lane.entries) {
                    if (e.sent && now - e.sentNanos > forwardTimeoutNanos << Math.min(e.waits, 4)) {
                        timedOut(documentId, lane, now);
                        break;
                    }
                    if (e.sent && now - e.sentNanos > HOLDER_CHECK_NANOS && now - lane.holderCheckedNanos > HOLDER_CHECK_NANOS) {
                        // Slow to answer: is it still the owner? A dead owner's lease expires and another takes
                        // it; noticing that here moves the writes without waiting for the (long) timeout.
                        lane.holderCheckedNanos = now;
                        String holder = ownership.holder(documentId);
                        if (holder == null || !holder.equals(lane.owner)) {
                            requeueSent(documentId, lane, 0);
                        }
                        break;
                    }
                }
                for (var it = lane.entries.iterator(); it.hasNext(); ) {
                    Entry e = it.next();
                    if (now - e.firstNanos > giveUpNanos) {
                        it.remove();
                        laneOf.remove(e.rid);
                        failed.add(e);
                    }
                }
                Entry head = lane.entries.peek();
                if (head != null && !head.sent && now - head.dueNanos >= 0) {
                    route[0] = ownership.route(documentId);
                    if (route[0] instanceof Ownership.Route.Remote r) {
                        for (Entry e : lane.entries) {
                            if (!e.sent) {
                                send(lane, e, r.instanceId());
                            }
                        }
                    } else if (lane.entries.stream().noneMatch(e -> e.sent)) {
                        // Committed here now: in order, and the lane is done with them.
                        local.addAll(lane.entries);
                        lane.entries.forEach(e -> laneOf.remove(e.rid));
                        lane.entries.clear();
                    }
                }
                retireIfEmpty(documentId, lane);
            } finally {
                lane.lock.unlock();
            }
            for (Entry e : failed) {
                LOG.warning("a write to " + documentId + " found no instance to commit it within "
                        + giveUpNanos / 1_000_000 + " ms; not acknowledged");
                e.settled.accept(new StorageException("no instance could commit the write to " + documentId, null));
            }
            for (Entry e : local) {
                long fence = route[0] instanceof Ownership.Route.Local l ? l.fence() : 0;
                try {
                    commitHere(e, fence);
                } catch (StorageException | RuntimeException ex) {
                    e.settled.accept(ex);
                }
            }
        }
    }

    // ---- the owner's side ------------------------------------------------------------------------------

    /** Writes another instance forwarded, in its send order: committed here if this instance owns the document. */
    private void commitForwarded(String from, List<Forwarding.Write> writes) {
        for (Forwarding.Write w : writes) {
            String documentId = w.request().documentId();
            // route, not just a look at what is owned: a write that arrives while this instance is still
            // claiming the document (it took the lease a moment ago) waits for the claim instead of bouncing.
            long fence = ownership.route(documentId) instanceof Ownership.Route.Local l ? l.fence() : -1;
            if (fence <= 0) {
                forwarding.answer(from, new Forwarding.Outcome(w.rid(), Forwarding.Status.MOVED, null, null));
                continue;
            }
            try {
                documents.write(Peer.detached(w.request().writerId()), false, w.request(), fence, error -> {
                    Forwarding.Outcome outcome;
                    if (error == null) {
                        outcome = new Forwarding.Outcome(w.rid(), Forwarding.Status.OK, null, null);
                    } else if (error instanceof FencedException) {
                        ownership.fenced(documentId, fence);
                        outcome = new Forwarding.Outcome(w.rid(), Forwarding.Status.MOVED, null, null);
                    } else if (error instanceof ProtocolException p) {
                        outcome = new Forwarding.Outcome(w.rid(), Forwarding.Status.ERROR, p.getMessage(), p.code());
                    } else {
                        LOG.log(Level.WARNING, "a write to " + documentId + " forwarded by " + from + " failed", error);
                        outcome = new Forwarding.Outcome(w.rid(), Forwarding.Status.ERROR, "Delta application failed", null);
                    }
                    forwarding.answer(from, outcome);
                });
            } catch (StorageException | RuntimeException e) {
                LOG.log(Level.WARNING, "a write to " + documentId + " forwarded by " + from + " failed", e);
                forwarding.answer(from, new Forwarding.Outcome(w.rid(), Forwarding.Status.ERROR, "Delta application failed", null));
            }
        }
    }

    /**
     * Drain (SIGTERM): gives up every lease at once so the other instances take over without waiting out the
     * TTL. Writes still committing here with the old epoch are then either committed before the new owner's
     * claim or refused by it and answered "moved", which their forwarders re-send to the new owner.
     */
    public void drain() {
        if (ownership != null) {
            ownership.drain();
        }
    }

    @Override
    public void close() {
        closed = true;
        loops.forEach(Thread::interrupt);
        if (forwarding != null) {
            forwarding.close();
        }
    }
}
