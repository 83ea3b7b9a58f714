package dev.synckit.server.ws;

import dev.synckit.server.auth.Authenticator;
import dev.synckit.server.config.Settings;
import dev.synckit.server.sync.Awareness;
import dev.synckit.server.cluster.Writes;
import dev.synckit.server.sync.Documents;
import io.helidon.websocket.WsListener;
import io.helidon.websocket.WsSession;

import java.time.Instant;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import java.util.logging.Logger;

/**
 * The WebSocket front door: admits connections, knows the live ones, and runs the timers that watch them
 * (heartbeat, auth timeout, presence sweep, cache eviction).
 */
public final class Gateway implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Gateway.class.getName());

    private final Settings settings;
    private final Authenticator authenticator;
    private final Documents documents;
    private final Writes writes;
    private final Awareness awareness;
    private final Admission admission;
    private final OutboundBudget outboundBudget;
    private final Set<Connection> live = ConcurrentHashMap.newKeySet();
    private final AtomicLong connectionCounter = new AtomicLong();
    private final ScheduledExecutorService timers;
    /** 1012 "Service Restart": SDKs reconnect, and a load balancer sends them to another instance. */
    static final int SHUTDOWN_CLOSE = 1012;
    private final java.util.concurrent.atomic.AtomicInteger inFlight = new java.util.concurrent.atomic.AtomicInteger();
    private volatile boolean accepting = true;
    /**
     * Connections whose token expires, swept every second: one timer task per connection would keep
     * closed sessions referenced until their token's exp.
     */
    private final Map<Connection, Expiry> expiries = new ConcurrentHashMap<>();

    private record Expiry(Instant at, BooleanSupplier current) {
    }

    public Gateway(Settings settings, Authenticator authenticator, Documents documents, Writes writes, Awareness awareness) {
        this.settings = settings;
        this.writes = writes;
        this.authenticator = authenticator;
        this.documents = documents;
        this.awareness = awareness;
        this.admission = new Admission(settings.limits().maxConnections(), settings.limits().maxConnectionsPerIp());
        this.outboundBudget = new OutboundBudget(settings.limits().outboundBudget(), () -> live);
        // Timer tasks only enqueue or flip flags, so one platform thread is plenty.
        this.timers = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "synckit-timers");
            t.setDaemon(true);
            return t;
        });
        long heartbeat = settings.websocket().heartbeatInterval().toMillis();
        timers.scheduleAtFixedRate(this::heartbeat, heartbeat, heartbeat, TimeUnit.MILLISECONDS);
        long sweep = Math.max(100, settings.sync().awarenessTimeout().toMillis() / 3);
        timers.scheduleAtFixedRate(this::sweep, sweep, sweep, TimeUnit.MILLISECONDS);
        timers.scheduleAtFixedRate(this::expire, 1, 1, TimeUnit.SECONDS);
    }

    /** One listener per connection. */
    public Supplier<WsListener> listeners() {
        return () -> new ClientSession(this);
    }

    Settings settings() {
        return settings;
    }

    Authenticator authenticator() {
        return authenticator;
    }

    Documents documents() {
        return documents;
    }

    Writes writes() {
        return writes;
    }

    Awareness awareness() {
        return awareness;
    }

    Optional<Connection> admit(String ip, WsSession session) {
        if (!accepting) {
            session.close(SHUTDOWN_CLOSE, "Server restarting");
            return Optional.empty();
        }
        String refusal = admission.admit(ip);
        if (refusal != null) {
            LOG.warning(() -> "refused a connection from " + ip + ": " + refusal);
            session.close(1008, refusal);
            return Optional.empty();
        }
        Connection c = new Connection("conn-" + connectionCounter.incrementAndGet(), ip, session,
                settings.limits().outboundQueueBytes(), outboundBudget);
        live.add(c);
        dev.synckit.server.meters.Meters.connectionOpened();
        return Optional.of(c);
    }

    void release(Connection c) {
        if (!live.remove(c)) {
            return;
        }
        c.closed();
        dev.synckit.server.meters.Meters.connectionClosed();
        admission.release(c.ip());
        for (String documentId : Set.copyOf(c.documents())) {
            documents.unsubscribe(c, documentId);
        }
        awareness.disconnected(c);
    }

    void scheduleAuthTimeout(Connection c, BooleanSupplier authenticated) {
        timers.schedule(() -> {
            if (!authenticated.getAsBoolean() && live.contains(c)) {
                LOG.info(() -> c.id() + " (" + c.ip() + ") did not authenticate in time");
                c.close(1008, "Authentication timeout");
            }
        }, settings.auth().timeout().toMillis(), TimeUnit.MILLISECONDS);
    }

    /**
     * Closes the connection with 1008 within a second after {@code at} (null: never) unless
     * {@code current} says it has authenticated again since; a later call replaces an earlier one.
     */
    void expireAt(Connection c, Instant at, BooleanSupplier current) {
        if (at == null) {
            expiries.remove(c);
        } else {
            expiries.put(c, new Expiry(at, current));
        }
    }

    private void expire() {
        Instant now = authenticator.clock().instant();
        try {
            expiries.forEach((c, e) -> {
                if (!live.contains(c)) {
                    expiries.remove(c, e);
                } else if (!now.isBefore(e.at()) && expiries.remove(c, e) && e.current().getAsBoolean()) {
                    LOG.info(() -> c.id() + " (" + c.ip() + ") token expired; closing");
                    c.close(1008, "Token expired");
                }
            });
        } catch (RuntimeException e) {
            // A throwing periodic task is never run again; the next sweep retries.
            LOG.log(java.util.logging.Level.SEVERE, "token expiry sweep failed", e);
        }
    }

    /** WebSocket pings; a connection that sent nothing (not even a pong) for a whole interval is dropped. */
    private void heartbeat() {
        for (Connection c : live) {
            if (!c.checkAlive()) {
                LOG.info(() -> c.id() + " (" + c.ip() + ") missed its heartbeat; dropping it");
                c.terminate();
                release(c);
            } else {
                c.ping();
            }
        }
    }

    private void sweep() {
        try {
            awareness.sweep();
            documents.evictIdle();
        } catch (RuntimeException e) {
            LOG.log(java.util.logging.Level.SEVERE, "periodic sweep failed", e);
        }
    }

    /** Distinct authenticated users among the live connections. */
    public int userCount() {
        return (int) live.stream().map(Connection::userId).filter(java.util.Objects::nonNull).distinct().count();
    }

    public int connectionCount() {
        return live.size();
    }

    /** Closes every connection with 1001 and stops the timers. */
    @Override
    public void close() {
        accepting = false;
        timers.shutdownNow();
        for (Connection c : live) {
            c.close(SHUTDOWN_CLOSE, "Server restarting");
        }
    }

    /**
     * Graceful shutdown, first half: refuse new connections, then wait (up to {@code grace}) until no
     * message is being handled, so every write that reached the server is committed and acknowledged.
     * Returns how many handlers were still running when the grace ran out.
     */
    public int drain(java.time.Duration grace) {
        accepting = false;
        long deadline = System.nanoTime() + grace.toNanos();
        // A handled write may still be committing; its ack is part of what drain promises.
        while ((inFlight.get() > 0 || documents.uncommitted() > 0 || writes.unanswered() > 0) && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return inFlight.get() + documents.uncommitted() + writes.unanswered();
    }

    /** Second half: close every connection with 1012 and wait (up to {@code grace}) for them to go. */
    public void closeConnections(java.time.Duration grace) {
        for (Connection c : live) {
            c.close(SHUTDOWN_CLOSE, "Server restarting");
        }
        long deadline = System.nanoTime() + grace.toNanos();
        while (!live.isEmpty() && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** Brackets the handling of one inbound message (for {@link #drain}). */
    void handling(boolean started) {
        if (started) {
            inFlight.incrementAndGet();
        } else {
            inFlight.decrementAndGet();
        }
    }
}
