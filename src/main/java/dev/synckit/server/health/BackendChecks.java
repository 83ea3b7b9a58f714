package dev.synckit.server.health;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * The last round of backend checks, shared by every health request. The health endpoints are
 * unauthenticated, so each request running its own probes would let a flood of them load PostgreSQL
 * and Redis: a round is reused while it is younger than {@code maxAge}, and while one runs, every
 * other caller waits for it instead of starting another. Each check keeps its own deadline inside the
 * round, so nobody waits longer than one round.
 */
final class BackendChecks {
    private record Round(List<HealthRoutes.Check> checks, long finishedNanos) {}

    private final Supplier<List<HealthRoutes.Check>> probe;
    private final long maxAgeNanos;
    private final LongSupplier nanoTime;
    /** Guards the two fields below; never held while probing. */
    private final ReentrantLock lock = new ReentrantLock();
    private Round last;
    private CompletableFuture<List<HealthRoutes.Check>> running;

    BackendChecks(Supplier<List<HealthRoutes.Check>> probe, Duration maxAge, LongSupplier nanoTime) {
        this.probe = probe;
        this.maxAgeNanos = maxAge.toNanos();
        this.nanoTime = nanoTime;
    }

    /** The checks at most {@code maxAge} old (counted from when their round finished). */
    List<HealthRoutes.Check> current() {
        CompletableFuture<List<HealthRoutes.Check>> round;
        boolean mine = false;
        lock.lock();
        try {
            if (last != null && nanoTime.getAsLong() - last.finishedNanos() < maxAgeNanos) {
                return last.checks();
            }
            if (running == null) {
                running = new CompletableFuture<>();
                mine = true;
            }
            round = running;
        } finally {
            lock.unlock();
        }
        if (mine) {
            run(round);
        }
        return round.join();
    }

    private void run(CompletableFuture<List<HealthRoutes.Check>> round) {
        try {
            List<HealthRoutes.Check> checks = List.copyOf(probe.get());
            finish(new Round(checks, nanoTime.getAsLong()));
            round.complete(checks);
        } catch (RuntimeException | Error e) {
            finish(last); // not cached: the next caller tries again
            round.completeExceptionally(e);
        }
    }

    private void finish(Round round) {
        lock.lock();
        try {
            last = round;
            running = null;
        } finally {
            lock.unlock();
        }
    }
}
