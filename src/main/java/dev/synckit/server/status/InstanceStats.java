package dev.synckit.server.status;

import dev.synckit.server.cluster.Writes;
import dev.synckit.server.health.HealthRoutes;
import dev.synckit.server.meters.Meters;
import dev.synckit.server.pubsub.FanOut;
import dev.synckit.server.pubsub.RedisFanOut;
import dev.synckit.server.sync.Documents;
import dev.synckit.server.ws.Gateway;

import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Samples this instance once a second for the status page and, with Redis, shares the sample with the other
 * instances. Three tasks on virtual threads, each never overlapping itself: the sample (memory only, so it
 * keeps its one-second rhythm), the backend checks (may block up to the health deadline) and the Redis
 * exchange (may block up to the Redis timeout). Requests only read what these left in volatile fields, so
 * however often the page is polled, neither the database nor Redis is asked more than once a second. The
 * backend checks run only while some instance's page is being watched: nobody looking, no probes (the health
 * endpoints' own probe accounting stays as it was).
 */
public final class InstanceStats implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(InstanceStats.class.getName());
    /** Five minutes of per-second rates. */
    static final int SECONDS_KEPT = 300;
    /** A page polled within this long counts as watched (the checks refresh every second meanwhile). */
    private static final long WATCHED_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final Gateway gateway;
    private final Documents documents;
    private final Writes writes;
    private final Supplier<List<HealthRoutes.Check>> backendChecks;
    private final ClusterBoard board; // null without Redis
    private final String instanceId;
    private final String host;
    private final long startedAt = ManagementFactory.getRuntimeMXBean().getStartTime();
    private final ScheduledExecutorService tasks =
            Executors.newScheduledThreadPool(3, Thread.ofVirtual().name("status-", 0).factory());

    // Sampler thread only.
    private final Series writesSeries = new Series(SECONDS_KEPT);
    private final Series broadcastsSeries = new Series(SECONDS_KEPT);
    private final Series connectionsSeries = new Series(SECONDS_KEPT);
    private final DocumentActivity activity = new DocumentActivity();
    private long lastNanos;
    private long lastWrites;
    private long lastBroadcasts;

    private volatile Snapshot latest;
    private volatile List<HealthRoutes.Check> checks = List.of();
    private volatile long checkedAt; // epoch ms of the checks shown; 0 before the first round
    private volatile long watchedNanos = System.nanoTime() - WATCHED_NANOS;
    private volatile ClusterBoard.Result cluster = new ClusterBoard.Result(List.of(), null);

    public InstanceStats(Gateway gateway, Documents documents, Writes writes, FanOut fanOut,
                         Supplier<List<HealthRoutes.Check>> backendChecks) {
        this.gateway = gateway;
        this.documents = documents;
        this.writes = writes;
        this.backendChecks = backendChecks;
        this.board = fanOut instanceof RedisFanOut redis ? new ClusterBoard(redis) : null;
        this.instanceId = fanOut instanceof RedisFanOut redis ? redis.instanceId() : "local";
        String hostname = System.getenv("HOSTNAME"); // the pod name under Kubernetes
        this.host = (hostname == null || hostname.isBlank() ? "pid" : hostname) + " " + ProcessHandle.current().pid();
        lastNanos = System.nanoTime();
        lastWrites = Meters.writesCommitted();
        lastBroadcasts = broadcasts();
        latest = sample();
    }

    /** Starts the tasks; separate from the constructor so that a test can sample by hand. */
    public InstanceStats start() {
        tasks.scheduleAtFixedRate(guarded("sample", () -> latest = sample()), 1, 1, TimeUnit.SECONDS);
        tasks.scheduleWithFixedDelay(guarded("checks", this::refreshChecks), 0, 1, TimeUnit.SECONDS);
        if (board != null) {
            tasks.scheduleWithFixedDelay(guarded("exchange", () -> cluster = board.exchange(instanceId, latest.toJson())),
                    0, 1, TimeUnit.SECONDS);
        }
        return this;
    }

    /** A task that throws would never run again (scheduled executors cancel it): log and keep going. */
    private static Runnable guarded(String what, Runnable task) {
        return () -> {
            try {
                task.run();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "status " + what + " failed", e);
            }
        };
    }

    private static long broadcasts() {
        return Meters.messagesOut("delta") + Meters.messagesOut("delta_batch");
    }

    private Snapshot sample() {
        long now = System.nanoTime();
        long w = Meters.writesCommitted();
        long b = broadcasts();
        double seconds = Math.max(1e-3, (now - lastNanos) / 1e9); // the elapsed time, not the nominal second
        if (latest != null) {
            writesSeries.add((w - lastWrites) / seconds);
            broadcastsSeries.add((b - lastBroadcasts) / seconds);
            connectionsSeries.add(gateway.connectionCount());
        }
        lastNanos = now;
        lastWrites = w;
        lastBroadcasts = b;
        DocumentActivity.Busiest busiest = activity.sample(documents.summaries());
        Writes.Status owned = writes.status();
        long wall = System.currentTimeMillis();
        return new Snapshot(instanceId, host, wall, startedAt, (wall - startedAt) / 1000,
                gateway.connectionCount(), gateway.userCount(), documents.cachedCount(),
                owned == null ? null : owned.ownedDocuments(), w, b, writesSeries.last(), broadcastsSeries.last(),
                writesSeries.toArray(), broadcastsSeries.toArray(), connectionsSeries.toArray(), checks, checkedAt,
                watchedHere(), busiest.bySubscribers(), busiest.byWrites());
    }

    /** While this page or another instance's is watched (they show this instance's state too). */
    private void refreshChecks() {
        boolean watchedElsewhere = cluster.snapshots().stream()
                .anyMatch(s -> s.path("watched").asBoolean() && !instanceId.equals(s.path("instanceId").asText()));
        if (watchedHere() || watchedElsewhere) {
            checks = List.copyOf(backendChecks.get());
            checkedAt = System.currentTimeMillis();
        }
    }

    private boolean watchedHere() {
        return System.nanoTime() - watchedNanos < WATCHED_NANOS;
    }

    /** Someone is looking: keep the backend state fresh for a while. */
    void watched() {
        watchedNanos = System.nanoTime();
    }

    String instanceId() {
        return instanceId;
    }

    boolean clustered() {
        return board != null;
    }

    Snapshot latest() {
        return latest;
    }

    /** What the last Redis exchange brought (this instance's own published snapshot among them). */
    ClusterBoard.Result cluster() {
        return cluster;
    }

    @Override
    public void close() {
        tasks.shutdownNow();
        try {
            tasks.awaitTermination(2, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
