package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.crdt.CrdtException;
import dev.synckit.server.crdt.DataTypes;
import dev.synckit.server.crdt.FugueText;
import dev.synckit.server.meters.Meters;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.Message;
import dev.synckit.server.protocol.Message.FieldChange;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.protocol.ProtocolException;
import dev.synckit.server.pubsub.FanOut;
import dev.synckit.server.storage.CommitResult;
import dev.synckit.server.storage.DocumentWrite;
import dev.synckit.server.storage.FencedException;
import dev.synckit.server.storage.StoredDocument;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.storage.StorageException;
import dev.synckit.server.storage.StoredDelta;
import dev.synckit.server.storage.TextState;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.function.Consumer;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The documents this instance serves: a cache over {@link StorageAdapter}, the write path and the
 * field broadcast.
 *
 * <p>A write is applied under the document's lock: the new state is computed, committed to storage, and
 * only then made visible, acknowledged and queued for broadcast. Because the winner is simply the last
 * write in that order, LWW needs no wall-clock comparison. Broadcasts are flushed by the writing thread
 * as soon as it leaves the lock; writes that land while a flush is running are coalesced per field into
 * the next round.
 *
 * <p>Past 500 lines on purpose: writing, settling, remote apply, catch-up and eviction all work under the one
 * document-lock protocol described here, and splitting them would spread its invariants over several files.
 * Ownership (issue 13) gets a package of its own instead of growing this class.
 */
public final class Documents {
    private static final Logger LOG = Logger.getLogger(Documents.class.getName());
    /** The clock key the server bumps so that every write raises the clock maximum (PROTOCOL.md §13 R6). */
    static final String SERVER_CLOCK_KEY = "server";
    /** The replica id in text states the server writes (SDK clients only read it back as a remote's). */
    static final String TEXT_REPLICA = "server";
    /**
     * Keys a document clock keeps: clients use only its maximum and merge it into their own by key
     * (PROTOCOL.md §6.9), so the smallest entries can go and the clock stays bounded however many clients
     * ever wrote. It travels in every broadcast and Redis message and is stored one row per key.
     */
    static final int MAX_CLOCK_KEYS = 8;

    private final StorageAdapter storage;
    private final FanOut fanOut;
    private final int maxCached;
    private final long maxDocumentBytes;
    private final long flushHandOffNanos;
    private final ConcurrentHashMap<String, Document> cache = new ConcurrentHashMap<>();
    /** Writes waiting for storage, server-wide; bounds memory when the database is slower than the clients. */
    static final int MAX_UNCOMMITTED = 4096;
    private final Semaphore uncommitted = new Semaphore(MAX_UNCOMMITTED);
    static final long CATCH_UP_FIRST_RETRY_MILLIS = 100;
    static final long CATCH_UP_MAX_RETRY_MILLIS = 10_000;
    /** Documents whose catch-up from storage failed and is being retried, with a count of failures. */
    private final ConcurrentHashMap<String, Long> stale = new ConcurrentHashMap<>();
    private volatile boolean closed;
    private volatile Committed committed = (documentId, seq, timestamp, created) -> { };

    /** Told of each write this instance committed (not of other instances' writes), after its ack is queued. */
    @FunctionalInterface
    public interface Committed {
        /** Runs under the document's lock: must not block. {@code created}: the document's first write. */
        void committed(String documentId, long seq, long timestamp, boolean created);
    }

    /** Set once at wiring, before clients connect (webhooks). */
    public void onCommitted(Committed listener) {
        this.committed = listener;
    }

    /** @param maxDocumentBytes writes that would grow a document past this are refused ({@code DOCUMENT_TOO_LARGE}) */
    public Documents(StorageAdapter storage, FanOut fanOut, int maxCached, Duration batchDelay, long maxDocumentBytes) {
        this.maxDocumentBytes = maxDocumentBytes;
        this.storage = storage;
        this.fanOut = fanOut;
        this.maxCached = maxCached;
        this.flushHandOffNanos = batchDelay.toNanos();
    }

    /** A document's current state; for a new document, an empty one. */
    private Document document(String id) throws StorageException {
        Document doc = cache.get(id);
        if (doc == null) {
            // Loading outside computeIfAbsent keeps slow storage from blocking other keys; a racing
            // loader simply loses putIfAbsent and uses the winner.
            Document loaded = new Document(id, storage.load(id).orElse(null));
            doc = cache.putIfAbsent(id, loaded);
            if (doc == null) {
                doc = loaded;
            }
        }
        doc.lastUsed = System.nanoTime();
        return doc;
    }

    /** Runs {@code action} under the lock of a live (not evicted) cached document. */
    private <T> T locked(String id, LockedAction<T> action) throws StorageException {
        while (true) {
            Document doc = document(id);
            doc.lock.lock();
            try {
                if (!doc.evicted) {
                    return action.run(doc);
                }
            } finally {
                doc.lock.unlock();
            }
        }
    }

    @FunctionalInterface
    private interface LockedAction<T> {
        T run(Document doc) throws StorageException;
    }

    /**
     * Subscribes the peer and sends it the document's state as a {@code sync_response}. The reply is queued
     * under the lock, so any broadcast the peer receives afterwards is newer than the state it got.
     */
    public void subscribe(Peer peer, String documentId, String requestId) throws StorageException {
        Document fresh = locked(documentId, doc -> {
            // Another instance may have written since we cached it; one cheap query tells.
            reload(doc);
            boolean again = doc.subscribers.contains(peer);
            addSubscriber(doc, peer);
            peer.send(Outbound.of(MessageType.SYNC_RESPONSE, snapshot(doc, requestId)));
            Relay.subscribed(doc, peer, !again);
            return doc;
        });
        flush(fresh);
    }

    private static ObjectNode snapshot(Document doc, String requestId) {
        ObjectNode body = Json.object();
        body.put("requestId", requestId).put("documentId", doc.id);
        ObjectNode state = body.putObject("state");
        doc.fields.forEach(state::set);
        body.putArray("deltas");
        body.set("clock", Outbound.clockNode(doc.clock));
        if (doc.text != null) {
            body.put("textState", doc.text.state()).put("textClock", doc.text.clock());
        }
        return body;
    }

    /**
     * Subscribes a writer whose write is committed elsewhere (forwarded to the document's owner), as writing
     * here would: it then hears its own and everybody's writes through this instance's broadcasts.
     */
    public void join(Peer peer, String documentId) throws StorageException {
        locked(documentId, doc -> {
            addSubscriber(doc, peer);
            return null;
        });
    }

    public void unsubscribe(Peer peer, String documentId) {
        peer.unsubscribed(documentId);
        Document doc = cache.get(documentId);
        if (doc == null) {
            return;
        }
        doc.lock.lock();
        try {
            if (doc.subscribers.remove(peer) && doc.subscribers.isEmpty()) {
                fanOut.unlisten(documentId);
            }
        } finally {
            doc.lock.unlock();
        }
    }

    /** Under the document lock: the first local subscriber makes this instance listen to other instances. */
    private void addSubscriber(Document doc, Peer peer) {
        peer.subscribed(doc.id);
        if (doc.subscribers.add(peer) && doc.subscribers.size() == 1) {
            fanOut.listen(doc.id);
        }
    }

    /**
     * A write committed by another instance. Applied in sequence order: an older or equal sequence is a
     * duplicate and dropped; the next one is applied and broadcast; anything beyond it means messages
     * were missed, so the document is reloaded from storage (which already holds everything announced).
     */
    public void applyRemote(FanOut.RemoteWrite remote) {
        Document doc = cache.get(remote.documentId());
        if (doc == null) {
            return; // nobody here cares; whoever loads it later reads storage
        }
        doc.lock.lock();
        try {
            if (doc.evicted || remote.lastSeq() <= doc.seq) {
                return;
            }
            if (remote.firstSeq() != doc.seq + 1) {
                reload(doc);
            } else {
                remote.fields().forEach((field, value) -> {
                    if (Message.isTombstone(value)) {
                        doc.remove(field);
                    } else {
                        doc.put(field, value);
                    }
                });
                doc.clock = Map.copyOf(remote.clock());
                doc.seq = remote.lastSeq();
                if (remote.text() != null) {
                    doc.text(remote.text());
                }
                if (remote.types() != null) {
                    doc.types(remote.types());
                }
                doc.lastModified = System.currentTimeMillis();
                remote.fields().forEach((field, value) -> doc.queue(field, new Document.PendingField(value, doc.clock)));
                Relay.committed(doc, null, remote.typeOps());
                if (doc.inFlight.isEmpty()) {
                    // The next local write starts from here, not from before the remote one: otherwise it
                    // always lost the race at the store and was rebased (a load under the row lock).
                    doc.catchUpTip();
                }
            }
        } catch (StorageException e) {
            catchUpFailed(remote.documentId(), e);
        } finally {
            doc.lock.unlock();
        }
        flush(doc);
    }

    /**
     * Messages for the document may have been missed (first listen, reconnect): reload it from storage. A
     * reload that fails is retried with backoff until one succeeds, because nothing else would ever bring a
     * quiet document up to date on this instance.
     */
    public void resync(String documentId) {
        if (!catchUp(documentId, Level.WARNING)) {
            retryCatchUp(documentId);
        }
    }

    private void catchUpFailed(String documentId, StorageException e) {
        LOG.warning("catching up " + documentId + " from storage failed (retrying): " + e.getMessage());
        retryCatchUp(documentId);
    }

    /** Reloads a cached document from storage if it moved on; false if storage could not be read. */
    private boolean catchUp(String documentId, Level failureLevel) {
        Document doc = cache.get(documentId);
        if (doc == null) {
            return true; // not cached: whoever loads it later reads storage
        }
        doc.lock.lock();
        try {
            if (!doc.evicted) {
                reload(doc);
            }
        } catch (StorageException e) {
            LOG.log(failureLevel, "catching up " + documentId + " from storage failed (retrying): " + e.getMessage());
            return false;
        } finally {
            doc.lock.unlock();
        }
        flush(doc);
        return true;
    }

    /**
     * Starts (or, if one runs, re-arms) the retry loop of a document whose catch-up failed. The counter
     * tells the loop whether another failure came in while it was reloading, in which case it goes again.
     */
    private void retryCatchUp(String documentId) {
        boolean[] start = {false};
        stale.compute(documentId, (k, failures) -> {
            start[0] = failures == null;
            return failures == null ? 1L : failures + 1;
        });
        if (!start[0]) {
            return;
        }
        Thread.ofVirtual().name("catch-up-" + documentId).start(() -> {
            long delay = CATCH_UP_FIRST_RETRY_MILLIS;
            while (!closed) {
                try {
                    // Jitter: after a Redis reconnect every document retries at once against the same pool.
                    Thread.sleep(delay + java.util.concurrent.ThreadLocalRandom.current().nextLong(delay / 2 + 1));
                } catch (InterruptedException e) {
                    break;
                }
                Long seen = stale.get(documentId);
                if (catchUp(documentId, Level.FINE)) { // the first failure was logged
                    if (stale.remove(documentId, seen)) {
                        return;
                    }
                    delay = CATCH_UP_FIRST_RETRY_MILLIS;
                } else {
                    delay = Math.min(delay * 2, CATCH_UP_MAX_RETRY_MILLIS);
                }
            }
            stale.remove(documentId);
        });
    }

    /** Stops retrying catch-ups (at shutdown). */
    public void close() {
        closed = true;
    }

    private void reload(Document doc) throws StorageException {
        if (storage.currentSeq(doc.id) != doc.seq) {
            refreshed(doc, storage.load(doc.id).orElse(StoredDocument.empty(doc.id)));
        }
    }

    /**
     * Applies one write message: field changes in order, the client clocks merged, text ops stored and
     * relayed. The write is computed and submitted under the document's lock, which is then released while
     * the store commits, so further writes to the document can follow it into the same commit. Once the
     * write is durable, and after every write before it, it is settled: the cached state advances, the writer
     * gets {@code ack(ackId)} and every subscriber one {@code delta} per changed field. Returns once the
     * write is submitted; at most {@link #MAX_UNCOMMITTED} writes wait for storage at a time, beyond which
     * writers wait here.
     *
     * @param subscribeWriter whether writing subscribes the writer (and so echoes its write back to it);
     *                        false for a client that may write but not read the document (§7.2), which
     *                        must not receive everybody else's writes
     * @param clientId the writer's stable client id, which with {@code ackId} de-duplicates retries; may be null
     * @param ackId the id to acknowledge, or null to send no ack
     * @param settled called once the write is settled, on whatever thread: with null after the ack was
     *                queued, or with the error if the store refused the write (nothing was acknowledged and
     *                the document is unchanged by it); not called if this method throws
     * @throws StorageException if the document could not even be loaded
     */
    public void write(Peer writer, boolean subscribeWriter, String documentId, List<FieldChange> changes,
                      Map<String, Long> clientClock, List<ObjectNode> typeOps, String clientId, String ackId,
                      Consumer<Exception> settled) throws StorageException {
        write(writer, subscribeWriter, new WriteRequest(documentId, changes, clientClock, typeOps, writer.id(), clientId, ackId),
                0, settled);
    }

    /**
     * As above, for a request that may come from another instance. {@code fence} is this instance's
     * ownership epoch of the document (0: unfenced); a write the store refuses as fenced settles with a
     * {@link FencedException}, having changed nothing.
     */
    public void write(Peer writer, boolean subscribeWriter, WriteRequest request, long fence,
                      Consumer<Exception> settled) throws StorageException {
        String documentId = request.documentId();
        List<FieldChange> changes = request.changes();
        List<ObjectNode> typeOps = request.typeOps();
        String clientId = request.clientId();
        String ackId = request.ackId();
        uncommitted.acquireUninterruptibly();
        boolean[] submitted = {false};
        Document written;
        try {
            written = locked(documentId, doc -> {
                if (subscribeWriter) {
                    addSubscriber(doc, writer);
                }
                if (changes.isEmpty() && typeOps.isEmpty()) {
                    // Only ops without server semantics (counters, sets): nothing to store, but the client
                    // still learns that the message was received, after every write before it.
                    settleInOrder(doc, writer, ackId, settled, CommitResult.DUPLICATE, null);
                    submitted[0] = true;
                    return null;
                }
                // Merged against the tip here, so a state or op that cannot merge is refused before anything is
                // stored; the store usually commits onto that same tip, and then these results are reused.
                StoredDocument tip = doc.tip();
                TextState text;
                DataTypes types;
                try {
                    text = nextText(tip.text(), typeOps);
                    types = nextTypes(tip.types(), typeOps, clientId);
                } catch (CrdtException e) {
                    settleInOrder(doc, writer, ackId, settled, null, new ProtocolException(e.getMessage(), "INVALID_OPERATION"));
                    submitted[0] = true;
                    return null;
                }
                long size = doc.bytesAfter(changes, text, types);
                if (size > maxDocumentBytes && size > doc.bytes) { // a write that shrinks it is always allowed
                    settleInOrder(doc, writer, ackId, settled, null, new ProtocolException("Document too large: this write"
                            + " would make " + documentId + " " + size + " bytes, max " + maxDocumentBytes, "DOCUMENT_TOO_LARGE"));
                    submitted[0] = true;
                    return null;
                }
                StorageAdapter.Rebase compute = base -> {
                    long now = System.currentTimeMillis();
                    List<StoredDelta> deltas = new ArrayList<>(changes.size());
                    long seq = base.seq();
                    for (FieldChange change : changes) {
                        deltas.add(new StoredDelta(++seq, change.field(), change.isDelete() ? null : change.value(),
                                request.writerId(), now));
                    }
                    return new DocumentWrite(documentId, base.seq(), List.copyOf(deltas), nextClock(base.clock(), request.clock()),
                            base.text() == tip.text() ? text : nextTextOnto(base.text(), typeOps),
                            base.types() == tip.types() ? types : nextTypesOnto(base.types(), typeOps, clientId),
                            now, clientId, ackId, fence);
                };
                DocumentWrite proposed = compute.onto(tip);
                doc.advanceTip(proposed);
                PendingWrite pending = new PendingWrite(writer, ackId, typeOps, settled);
                doc.inFlight.add(pending);
                submitted[0] = true;
                long committing = System.nanoTime();
                StorageAdapter.Outcome outcome = (result, error) -> {
                    Meters.commitLatency(System.nanoTime() - committing);
                    pending.complete(result, error);
                    if (!doc.lock.isHeldByCurrentThread()) {
                        // Committed on the store's thread: settle here, broadcast on a thread of its own so
                        // that the committer goes back to committing.
                        settleLocked(doc);
                        if (doc.startFlush()) {
                            Thread.ofVirtual().name("flush-" + doc.id).start(() -> flushRounds(doc));
                        }
                    }
                };
                try {
                    storage.submit(proposed, compute, outcome);
                } catch (RuntimeException e) {
                    // A write that never reached the store must still leave the line, or it blocks every later one.
                    pending.complete(null, new StorageException("submitting a write to " + documentId + " failed: " + e, e));
                }
                settle(doc); // a store that commits synchronously has already reported
                return doc;
            });
        } finally {
            if (!submitted[0]) {
                uncommitted.release();
            }
        }
        if (written != null) {
            flush(written);
        }
    }

    /**
     * Under the document lock: a write decided without storage (nothing to store, or refused) joins the
     * in-flight line already settled, so its ack or error still follows the answers to the writes before it.
     */
    private void settleInOrder(Document doc, Peer writer, String ackId, Consumer<Exception> settled,
                               CommitResult result, Exception error) {
        PendingWrite decided = new PendingWrite(writer, ackId, List.of(), settled);
        decided.complete(result, error);
        doc.inFlight.add(decided);
        settle(doc);
    }

    private void settleLocked(Document doc) {
        doc.lock.lock();
        try {
            settle(doc);
        } finally {
            doc.lock.unlock();
        }
    }

    /** Under the document lock: settles the writes at the head of the line whose commit has been reported. */
    private void settle(Document doc) {
        PendingWrite head;
        while ((head = doc.inFlight.peek()) != null && head.done()) {
            doc.inFlight.poll();
            uncommitted.release();
            try {
                settle(doc, head);
            } catch (RuntimeException e) {
                LOG.log(Level.SEVERE, "settling a write to " + doc.id + " failed", e);
            }
        }
        if (doc.inFlight.isEmpty()) {
            doc.catchUpTip();
        }
    }

    private void settle(Document doc, PendingWrite w) {
        if (w.error() != null) {
            w.settled.accept(w.error());
            return;
        }
        if (w.result() instanceof CommitResult.Fenced f) {
            w.settled.accept(new FencedException(doc.id, f.fence(), f.current()));
            return;
        }
        // Not applied: a retry of something already durable, acknowledged again and nothing more.
        CommitResult.Applied applied = w.result() instanceof CommitResult.Applied a ? a : null;
        if (applied != null) {
            cache(doc, applied);
            doc.writes++; // under the lock: the only writer of the field
            Meters.writeCommitted();
        }
        sendAck(w.writer, w.ackId);
        w.settled.accept(null);
        if (applied == null) {
            return;
        }
        Relay.committed(doc, w.writer, w.typeOps);
        fanOut.publish(applied.write(), w.typeOps);
        DocumentWrite write = applied.write();
        if (write.lastSeq() > write.baseSeq()) { // only here, where it committed: one instance tells of each write
            committed.committed(doc.id, write.lastSeq(), write.timestamp(), write.baseSeq() == 0);
        }
    }

    /** Brings the cached state up to the applied write and queues its fields for broadcast. */
    private void cache(Document doc, CommitResult.Applied applied) {
        DocumentWrite write = applied.write();
        if (write.baseSeq() != doc.seq) {
            StoredDocument base = applied.rebasedOnto();
            if (base != null && base.seq() == write.baseSeq() && base.seq() > doc.seq) {
                refreshed(doc, base); // another instance wrote first: catch up to what this write was applied on
            } else {
                if (write.baseSeq() >= doc.seq) {
                    try {
                        reload(doc); // the cache is behind in a way we cannot explain; storage is the truth
                    } catch (StorageException e) {
                        catchUpFailed(doc.id, e);
                    }
                } // else already in the cache: a reload after a gap in other instances' messages read it
                return;
            }
        }
        doc.clock = write.clock();
        doc.seq = write.lastSeq();
        if (write.text() != null) {
            doc.text(write.text());
        }
        if (write.types() != null) {
            doc.types(write.types());
        }
        doc.lastModified = write.timestamp();
        for (StoredDelta d : write.deltas()) {
            if (d.isDelete()) {
                doc.remove(d.field());
            } else {
                doc.put(d.field(), d.value());
            }
            doc.queue(d.field(), new Document.PendingField(d.isDelete() ? Message.TOMBSTONE : d.value(), doc.clock));
        }
    }

    /** Writes submitted and not yet settled (for draining at shutdown). */
    public int uncommitted() {
        return MAX_UNCOMMITTED - uncommitted.availablePermits();
    }

    /** Takes another instance's writes into the cache and queues what changed for local subscribers. */
    private static void refreshed(Document doc, StoredDocument current) {
        TextState text = doc.text;
        DataTypes types = doc.types;
        doc.reset(current).forEach((field, value) ->
                doc.queue(field, new Document.PendingField(value == null ? Message.TOMBSTONE : value, doc.clock)));
        Relay.reloaded(doc, text, types);
    }

    private static void sendAck(Peer writer, String ackId) {
        if (ackId != null) {
            writer.send(Outbound.ack(ackId));
        }
    }

    /**
     * The clock after a write: the client's clock merged in by per-key maximum, the server key raised
     * if the maximum would not otherwise grow, then compacted to the {@link #MAX_CLOCK_KEYS} largest entries. A strictly growing maximum is what lets SDK replicas, which
     * order remote values by {@code max(clock)}, accept every authoritative broadcast.
     */
    static Map<String, Long> nextClock(Map<String, Long> current, Map<String, Long> client) {
        // Runs on every write: the entries go straight into the immutable result, with no map in between.
        int added = 0;
        for (String k : client.keySet()) {
            if (!current.containsKey(k)) {
                added++;
            }
        }
        long before = 0;
        long after = 0;
        boolean hasServer = false;
        @SuppressWarnings("unchecked")
        Map.Entry<String, Long>[] next = new Map.Entry[current.size() + added];
        int n = 0;
        for (Map.Entry<String, Long> e : current.entrySet()) {
            long mine = e.getValue();
            Long theirs = client.get(e.getKey());
            next[n++] = theirs != null && theirs > mine ? Map.entry(e.getKey(), theirs) : e;
            before = Math.max(before, mine);
            after = Math.max(after, Math.max(mine, theirs == null ? 0 : theirs));
            hasServer |= e.getKey().equals(SERVER_CLOCK_KEY);
        }
        for (Map.Entry<String, Long> e : client.entrySet()) {
            if (!current.containsKey(e.getKey())) {
                next[n++] = e;
                after = Math.max(after, e.getValue());
                hasServer |= e.getKey().equals(SERVER_CLOCK_KEY);
            }
        }
        if (after <= before) {
            Map.Entry<String, Long> bump = Map.entry(SERVER_CLOCK_KEY, before + 1);
            if (hasServer) {
                for (int i = 0; i < n; i++) {
                    if (next[i].getKey().equals(SERVER_CLOCK_KEY)) {
                        next[i] = bump;
                    }
                }
            } else {
                next = java.util.Arrays.copyOf(next, n + 1);
                next[n++] = bump;
            }
        }
        if (n > MAX_CLOCK_KEYS) {
            // The largest entries (the maximum among them), ties by key so every instance keeps the same ones.
            java.util.Arrays.sort(next, Map.Entry.<String, Long>comparingByValue().reversed().thenComparing(Map.Entry.comparingByKey()));
            next = java.util.Arrays.copyOf(next, MAX_CLOCK_KEYS);
        }
        return Map.ofEntries(next);
    }

    static long max(Map<String, Long> clock) {
        long m = 0;
        for (long v : clock.values()) {
            m = Math.max(m, v);
        }
        return m;
    }

    /**
     * The text state after a write's text-state ops, each merged into the current one (PROTOCOL.md §6.10), or
     * null if the write has none. The clock follows the TS server's: the op's timestamp, or one more.
     */
    static TextState nextText(TextState current, List<ObjectNode> ops) throws CrdtException {
        FugueText merged = null;
        long clock = current == null ? 0 : current.clock();
        for (ObjectNode op : ops) {
            if (op.path("type").asText().equals("text-state") && op.path("state").isTextual()) {
                FugueText incoming = FugueText.parse(op.get("state").textValue());
                if (merged == null) {
                    merged = current == null ? FugueText.empty() : FugueText.parse(current.state());
                }
                merged.merge(incoming);
                clock = Math.max(clock + 1, op.path("timestamp").asLong(0));
            }
        }
        if (merged == null) {
            return null;
        }
        List<FugueText.Piece> pieces = merged.pieces();
        if (pieces.size() > FugueText.MAX_BLOCKS) { // kept below the parse limit, or the next write could not read it
            throw new CrdtException("the merged text would have " + pieces.size() + " blocks, at most "
                    + FugueText.MAX_BLOCKS + " are kept");
        }
        return new TextState(FugueText.toJson(pieces, TEXT_REPLICA), clock);
    }

    /** As {@link #nextText}, onto whatever base the store rebases the write on: a state that no longer merges is dropped. */
    private static TextState nextTextOnto(TextState base, List<ObjectNode> ops) {
        try {
            return nextText(base, ops);
        } catch (CrdtException e) {
            LOG.warning(() -> "dropping a text state rebased onto a newer one: " + e.getMessage());
            return null;
        }
    }

    /**
     * The counter/set/format state after a write's ops, or null if it has none of those ops; checked when
     * the write is admitted, against the tip: an op that cannot apply refuses the whole write.
     */
    private static DataTypes nextTypes(DataTypes current, List<ObjectNode> ops, String clientId) throws CrdtException {
        DataTypes next = null;
        for (ObjectNode op : ops) {
            if (DataTypes.handles(op)) {
                next = (next == null ? current : next).apply(op, clientId);
            }
        }
        return next;
    }

    /** As {@link #nextTypes}, onto whatever base the store rebases the write on: an op that no longer fits is dropped. */
    private static DataTypes nextTypesOnto(DataTypes base, List<ObjectNode> ops, String clientId) {
        DataTypes next = null;
        for (ObjectNode op : ops) {
            if (DataTypes.handles(op)) {
                try {
                    next = (next == null ? base : next).apply(op, clientId);
                } catch (CrdtException e) {
                    LOG.warning(() -> "dropping a " + op.path("type").asText() + " op rebased onto a newer state: " + e.getMessage());
                }
            }
        }
        return next;
    }

    /**
     * Sends what is queued for the document, round after round, until nothing is left. A thread that has
     * been flushing for longer than the batch delay hands the rest to a fresh virtual thread, so one busy
     * document cannot keep a client's connection thread from reading its next message.
     */
    private void flush(Document doc) {
        if (!doc.startFlush()) {
            return;
        }
        flushRounds(doc);
    }

    private void flushRounds(Document doc) {
        long started = System.nanoTime();
        Map<String, Document.PendingField> batch;
        while ((batch = doc.takePending()) != null) {
            try {
                broadcast(doc, batch);
            } catch (RuntimeException e) {
                LOG.log(Level.SEVERE, "broadcast of " + doc.id + " failed", e);
            }
            if (System.nanoTime() - started > flushHandOffNanos) {
                Thread.ofVirtual().name("flush-" + doc.id).start(() -> flushRounds(doc));
                return;
            }
        }
    }

    /**
     * Sends one round of a document's changed fields to its subscribers: one {@code delta_batch} of {@code set}
     * ops to each peer that {@link Peer#takesBatches() takes batches} (the SDK applies them exactly like
     * per-field deltas, PROTOCOL.md §5.11), one {@code delta} per field to everyone else. Each message is built
     * and encoded once, however many subscribers share it.
     */
    private static void broadcast(Document doc, Map<String, Document.PendingField> batch) {
        if (doc.subscribers.isEmpty()) {
            return;
        }
        Map<String, Long> clock = null;
        for (Document.PendingField p : batch.values()) {
            clock = p.clock(); // the last field queued carries the newest clock
        }
        Outbound batched = null;
        List<Outbound> perField = null;
        for (Peer p : doc.subscribers) {
            if (p.takesBatches()) {
                if (batched == null) {
                    batched = Outbound.fieldBatch(doc.id, fieldSets(batch, clock));
                }
                p.send(batched);
            } else {
                if (perField == null) {
                    perField = deltasOf(doc.id, fieldSets(batch, clock));
                }
                perField.forEach(p::send);
            }
        }
        long now = System.nanoTime();
        for (Document.PendingField p : batch.values()) {
            Meters.fanOutLatency(now - p.queuedNanos());
        }
    }

    /** The round's fields, each with the round's newest clock (what a subscriber orders them by). */
    private static List<Outbound.FieldSet> fieldSets(Map<String, Document.PendingField> batch, Map<String, Long> clock) {
        List<Outbound.FieldSet> out = new ArrayList<>(batch.size());
        batch.forEach((field, p) -> out.add(new Outbound.FieldSet(field, p.value(), clock)));
        return out;
    }

    private static List<Outbound> deltasOf(String documentId, List<Outbound.FieldSet> fields) {
        List<Outbound> out = new ArrayList<>(fields.size());
        fields.forEach(f -> out.add(Outbound.fieldDelta(documentId, f)));
        return out;
    }

    /** Drops idle documents (no subscribers, nothing to flush) beyond the cache limit, least recently used first. */
    public int evictIdle() {
        int excess = cache.size() - maxCached;
        if (excess <= 0) {
            return 0;
        }
        List<Document> candidates = new ArrayList<>(cache.values());
        candidates.sort(Comparator.comparingLong(d -> d.lastUsed));
        int evicted = 0;
        for (Document doc : candidates) {
            if (evicted >= excess) {
                break;
            }
            if (doc.lock.tryLock()) {
                try {
                    if (doc.idle() && doc.inFlight.isEmpty()) {
                        doc.evicted = true;
                        cache.remove(doc.id, doc);
                        evicted++;
                    }
                } finally {
                    doc.lock.unlock();
                }
            }
        }
        return evicted;
    }

    /** Per-document figures for {@code /health} and the status page; {@code writes} committed here since cached. */
    public record Summary(String id, int subscribers, long lastModified, long writes) {}

    public List<Summary> summaries() {
        return cache.values().stream()
                .map(d -> new Summary(d.id, d.subscribers.size(), d.lastModified, d.writes))
                .sorted(Comparator.comparing(Summary::id))
                .toList();
    }

    /** The current subscribers of a document (empty if it is not cached). */
    public java.util.Set<Peer> subscribers(String documentId) {
        Document doc = cache.get(documentId);
        return doc == null ? java.util.Set.of() : doc.subscribers;
    }

    public int cachedCount() {
        return cache.size();
    }
}
