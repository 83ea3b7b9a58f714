package dev.synckit.server.ws;

import dev.synckit.server.protocol.Framing;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.sync.Peer;
import io.helidon.common.buffers.BufferData;
import io.helidon.webserver.spi.ServerConnection;
import io.helidon.websocket.WsSession;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * One WebSocket connection's transport: a bounded outbound queue drained by this connection's own
 * virtual thread, so that broadcasting to a slow client never blocks the sender. A client whose queue
 * grows past the byte limit is closed; it reconnects and resyncs from a fresh {@code sync_response}.
 */
final class Connection implements Peer {
    private static final Logger LOG = Logger.getLogger(Connection.class.getName());
    private static final long CLOSE_GRACE_MILLIS = 5000;

    /** What the writer thread sends next. */
    private sealed interface Item {
        /** {@code reply}: a {@code sync_response} the client asked for, bounded apart from broadcasts. */
        record Message(Outbound message, int bytes, boolean reply) implements Item {}

        record Ping() implements Item {}

        record Close(int code, String reason) implements Item {}
    }

    private final String id;
    private final String ip;
    private final WsSession session;
    private final long queueLimitBytes;
    /** A deque so that the writer, merging broadcasts, can put back the first item it cannot merge. */
    private final LinkedBlockingDeque<Item> queue = new LinkedBlockingDeque<>();
    private final AtomicLong queuedBytes = new AtomicLong();
    private final AtomicLong replyBytes = new AtomicLong();
    private final OutboundBudget budget;
    private final AtomicBoolean closing = new AtomicBoolean();
    /**
     * Held by the writer around each frame it sends and by {@link #closeReceived}, so that once the close
     * reply is out no data frame can follow it (Helidon's own send lock orders frames but not that).
     */
    private final ReentrantLock transmit = new ReentrantLock();
    private final Set<String> documents = ConcurrentHashMap.newKeySet();
    private volatile Framing framing = Framing.BINARY;
    private volatile boolean alive = true;
    private volatile boolean open = true;
    private volatile String userId;
    /** SDK client ids this connection wrote as (one in practice; bounded against a client inventing many). */
    private final Set<String> clientIds = ConcurrentHashMap.newKeySet();
    private static final int MAX_CLIENT_IDS = 16;

    private volatile boolean batches;

    Connection(String id, String ip, WsSession session, long queueLimitBytes, OutboundBudget budget) {
        this.budget = budget;
        this.id = id;
        this.ip = ip;
        this.session = session;
        this.queueLimitBytes = queueLimitBytes;
        Thread.ofVirtual().name("ws-writer-" + id).start(this::drain);
    }

    @Override
    public String id() {
        return id;
    }

    String ip() {
        return ip;
    }

    void speaksAs(String clientId) {
        if (clientIds.size() < MAX_CLIENT_IDS) {
            clientIds.add(clientId);
        }
    }

    /**
     * The client sent a {@code delta_batch}: the SDK's only write message, which the upstream test client never
     * sends. From now on its broadcasts come batched ({@link #takesBatches}); a client that never writes this
     * way keeps getting per-field deltas, which every client understands, so a wrong guess cannot cost it an update.
     */
    void writesBatches() {
        batches = true;
    }

    @Override
    public boolean takesBatches() {
        return batches;
    }

    @Override
    public boolean speaksFor(String clientId) {
        return clientId != null && clientIds.contains(clientId);
    }

    String userId() {
        return userId;
    }

    void userId(String userId) {
        this.userId = userId;
    }

    /** Replies follow the framing of the client's first message (§2.3). */
    void framing(Framing framing) {
        this.framing = framing;
    }

    @Override
    public void send(Outbound message) {
        if (closing.get()) {
            return;
        }
        int bytes = message.size(framing);
        // A document's state may be larger than the queue bound; it must still be sendable, or a large
        // document could never be opened. Replies are bounded apart: one at a time whatever its size.
        boolean reply = message.type() == dev.synckit.server.protocol.MessageType.SYNC_RESPONSE;
        AtomicLong counter = reply ? replyBytes : queuedBytes;
        long before = counter.getAndAdd(bytes);
        if (before + bytes > queueLimitBytes && (!reply || before > 0)) {
            counter.addAndGet(-bytes);
            LOG.warning(() -> id + " (" + ip + ") fell " + queueLimitBytes + " bytes behind; closing it");
            closeDroppingQueue(1008, "Client too slow");
            return;
        }
        if (message.type() == dev.synckit.server.protocol.MessageType.ERROR) {
            dev.synckit.server.meters.Meters.error(message.body().path("details").path("code").asText(null));
        }
        queue.add(new Item.Message(message, bytes, reply));
        budget.add(bytes);
        if (!open) {
            dropQueued(); // closed while we queued: nobody else will take it out of the accounting
        }
    }

    /** Bytes waiting in this connection's queue (what the global budget sheds by). */
    long queuedBytes() {
        return queuedBytes.get() + replyBytes.get();
    }

    /** Closed by the global outbound budget: furthest behind of all connections. */
    void shed() {
        LOG.warning(() -> id + " (" + ip + ") had " + queuedBytes() + " bytes queued when the server's outbound"
                + " budget ran out; closing it");
        closeDroppingQueue(1008, "Client too slow");
    }

    /** Takes an item out of the queue's accounting (exactly once per item: by the writer or by a drop). */
    private void dequeued(Item item) {
        if (item instanceof Item.Message m) {
            (m.reply() ? replyBytes : queuedBytes).addAndGet(-m.bytes());
            budget.add(-m.bytes());
        }
    }

    private void dropQueued() {
        Item item;
        while ((item = queue.poll()) != null) {
            dequeued(item);
        }
    }

    void ping() {
        if (!closing.get()) {
            queue.add(new Item.Ping());
        }
    }

    /**
     * Sends a close frame after what is already queued (so an {@code auth_error} or {@code error} sent just
     * before still reaches the client); forces the socket shut if that stalls.
     */
    void close(int code, String reason) {
        close(code, reason, false);
    }

    /** Sends a close frame after anything already queued is dropped (a client too far behind to catch up). */
    void closeDroppingQueue(int code, String reason) {
        close(code, reason, true);
    }

    private void close(int code, String reason, boolean dropQueued) {
        if (!closing.compareAndSet(false, true)) {
            return;
        }
        if (dropQueued) {
            dropQueued();
        }
        queue.add(new Item.Close(code, reason));
        Thread.ofVirtual().start(() -> {
            try {
                Thread.sleep(CLOSE_GRACE_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (open) {
                terminate();
            }
        });
    }

    /**
     * Drops the TCP connection without waiting for the peer (what a dead or stuck peer gets). Never blocks:
     * {@link WsSession#terminate()} would first send a close frame under Helidon's send lock, which the
     * writer thread holds while it is blocked on a peer that does not read, and it only ends the connection
     * when called on the connection's own thread. Closing the server connection with an interrupt wakes
     * that thread from its read, which closes the socket and so also unblocks the writer.
     */
    void terminate() {
        closing.set(true);
        open = false;
        try {
            if (session instanceof ServerConnection server) {
                server.close(true);
            } else {
                Thread.ofVirtual().start(() -> {
                    try {
                        session.terminate();
                    } catch (RuntimeException e) {
                        LOG.log(Level.FINE, "terminate " + id, e);
                    }
                });
            }
        } catch (RuntimeException e) {
            LOG.log(Level.FINE, "terminate " + id, e);
        }
        queue.add(new Item.Close(0, null)); // wakes the writer so it can exit
    }

    /**
     * The peer sent a close frame: answer it now, before any cleanup (RFC 6455 §5.5.1 "as soon as
     * practical"). A client that closes and reconnects at once only learns its old socket is closed from
     * our close frame and TCP end; if that comes after its new socket opened, it takes itself for offline.
     * What is still queued is dropped: the peer is leaving and resyncs when it comes back.
     */
    void closeReceived(int status) {
        if (haltWriter()) {
            try {
                session.close(echoable(status), "");
            } catch (RuntimeException e) {
                LOG.log(Level.FINE, "close reply to " + id, e);
            } finally {
                transmit.unlock();
            }
        }
    }

    /**
     * The connection failed and Helidon is about to send its own close: stop the writer first, so no data
     * frame follows that close.
     */
    void stopSending() {
        if (haltWriter()) {
            transmit.unlock();
        }
    }

    /**
     * Drops what is queued and stops the writer; returns holding {@link #transmit} unless the connection
     * was already closed. Runs on the handler thread, so it waits only for a frame the writer is sending
     * at that moment, and for a peer that stopped reading in the middle of one, not longer than the
     * close grace (then the connection is terminated).
     */
    private boolean haltWriter() {
        closing.set(true);
        dropQueued();
        try {
            // An idle writer holds no lock, so this is immediate; the writer is woken only afterwards, so
            // the close reply never waits for that thread to be scheduled.
            if (!transmit.tryLock(CLOSE_GRACE_MILLIS, java.util.concurrent.TimeUnit.MILLISECONDS)) {
                terminate();
                return false;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            terminate();
            return false;
        }
        queue.add(new Item.Close(0, null)); // wakes the writer, which finds the connection closed and exits
        if (!open) {
            transmit.unlock();
            return false;
        }
        open = false;
        return true;
    }

    /** The peer's status, if it may be sent back (1005, 1006, 1015 and reserved codes may not). */
    static int echoable(int status) {
        boolean sendable = (status >= 1000 && status <= 1003) || (status >= 1007 && status <= 1014)
                || (status >= 3000 && status <= 4999);
        return sendable ? status : 1000;
    }

    /** Called once the socket is gone. */
    void closed() {
        open = false;
        closing.set(true);
        dropQueued();
        queue.add(new Item.Close(0, null));
    }

    boolean isClosing() {
        return closing.get();
    }

    /** Heartbeat bookkeeping: any inbound frame proves the peer is alive. */
    void markAlive() {
        alive = true;
    }

    /** Returns whether the peer answered since the last call, and starts a new round. */
    boolean checkAlive() {
        boolean was = alive;
        alive = false;
        return was;
    }

    @Override
    public void subscribed(String documentId) {
        documents.add(documentId);
    }

    @Override
    public void unsubscribed(String documentId) {
        documents.remove(documentId);
    }

    Set<String> documents() {
        return documents;
    }

    private void drain() {
        // Acks passed over while merging field batches, still to be sent, in order, after the merged frame.
        java.util.ArrayDeque<Item> taken = new java.util.ArrayDeque<>();
        try {
            while (true) {
                Item item = taken.isEmpty() ? queue.take() : taken.poll();
                if (item instanceof Item.Message m) {
                    dequeued(m);
                    if (batches && m.message().fieldsOf() != null) {
                        item = new Item.Message(coalesce(m.message(), taken), m.bytes(), false);
                    }
                }
                transmit.lock();
                try {
                    if (!open) {
                        return;
                    }
                    switch (item) {
                        case Item.Message m -> {
                            dev.synckit.server.meters.Meters.messageOut(m.message().type().wireName());
                            if (framing == Framing.BINARY) {
                                session.send(BufferData.create(m.message().binary()), true);
                            } else {
                                session.send(m.message().json(), true);
                            }
                        }
                        case Item.Ping p -> session.ping(BufferData.empty());
                        case Item.Close c -> {
                            if (c.code() != 0) {
                                session.close(c.code(), c.reason());
                            }
                            return;
                        }
                    }
                } finally {
                    transmit.unlock();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            // The socket went away under us; the listener's onClose/onError does the cleanup.
            LOG.log(Level.FINE, "writer of " + id + " stopped", e);
        } finally {
            taken.forEach(this::dequeued);
            dropQueued(); // anything put back or queued after the last drop
        }
    }

    /**
     * One frame instead of many: the field batches of the same document queued right behind {@code first} are
     * merged into it, passing over acks, up to the first message that is neither (which is put back and keeps
     * its place, as does everything after it). The frames cost the CPU here (the kernel's write per frame), not
     * their bytes. Acks passed over are sent after the merged frame: an ack carries no state, so it may trail a
     * broadcast. Only that prefix leaves the queue, so a drop ({@link #dropQueued}) still reaches the rest.
     */
    private Outbound coalesce(Outbound first, java.util.ArrayDeque<Item> taken) {
        java.util.List<Outbound> merging = null;
        Item next;
        while ((next = queue.pollFirst()) != null) {
            if (!(next instanceof Item.Message m)) {
                queue.offerFirst(next);
                break;
            }
            Outbound o = m.message();
            if (first.fieldsOf().equals(o.fieldsOf())) {
                dequeued(m);
                if (merging == null) {
                    merging = new java.util.ArrayList<>();
                    merging.add(first);
                }
                merging.add(o);
            } else if (o.type() == dev.synckit.server.protocol.MessageType.ACK) {
                taken.addLast(next);
            } else {
                queue.offerFirst(next);
                break;
            }
        }
        return merging == null ? first : Outbound.merged(merging);
    }

    @Override
    public String toString() {
        return id;
    }
}
