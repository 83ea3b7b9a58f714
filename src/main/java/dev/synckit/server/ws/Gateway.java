package dev.synckit.server.ws;

import dev.synckit.server.auth.Authenticator;
import dev.synckit.server.config.Settings;
import dev.synckit.server.sync.Awareness;
import dev.synckit.server.sync.Documents;
import io.helidon.websocket.WsListener;
import io.helidon.websocket.WsSession;

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
    private final Awareness awareness;
    private final Admission admission;
    private final Set<Connection> live = ConcurrentHashMap.newKeySet();
    private final AtomicLong connectionCounter = new AtomicLong();
    private final ScheduledExecutorService timers;

    public Gateway(Settings settings, Authenticator authenticator, Documents documents, Awareness awareness) {
        this.settings = settings;
        this.authenticator = authenticator;
        this.documents = documents;
        this.awareness = awareness;
        this.admission = new Admission(settings.limits().maxConnections(), settings.limits().maxConnectionsPerIp());
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

    Awareness awareness() {
        return awareness;
    }

    Optional<Connection> admit(String ip, WsSession session) {
        String refusal = admission.admit(ip);
        if (refusal != null) {
            LOG.warning(() -> "refused a connection from " + ip + ": " + refusal);
            session.close(1008, refusal);
            return Optional.empty();
        }
        Connection c = new Connection("conn-" + connectionCounter.incrementAndGet(), ip, session,
                settings.limits().outboundQueueBytes());
        live.add(c);
        dev.synckit.server.health.Meters.connectionOpened();
        return Optional.of(c);
    }

    void release(Connection c) {
        if (!live.remove(c)) {
            return;
        }
        c.closed();
        dev.synckit.server.health.Meters.connectionClosed();
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
        timers.shutdownNow();
        for (Connection c : live) {
            c.close(1001, "Server shutdown");
        }
    }
}
