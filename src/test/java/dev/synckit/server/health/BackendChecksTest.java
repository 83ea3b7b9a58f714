package dev.synckit.server.health;

import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static dev.synckit.server.testing.Await.waitFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** One round of backend probes serves every caller for a second; concurrent callers share the one running. */
class BackendChecksTest {
    private static final Duration MAX_AGE = Duration.ofSeconds(1);
    private final AtomicLong now = new AtomicLong(1_000_000_000L);
    private final AtomicInteger probes = new AtomicInteger();

    private static List<HealthRoutes.Check> up(int round) {
        return List.of(new HealthRoutes.Check("storage", "UP", round, null));
    }

    @Test
    void callersDuringARunningProbeWaitForItInsteadOfStartingAnother() throws Exception {
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        BackendChecks checks = new BackendChecks(() -> {
            int round = probes.incrementAndGet();
            entered.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            }
            return up(round);
        }, MAX_AGE, now::get);

        AtomicReference<List<HealthRoutes.Check>> first = new AtomicReference<>();
        Thread prober = Thread.ofPlatform().start(() -> first.set(checks.current()));
        entered.await();
        List<Thread> waiters = new ArrayList<>();
        List<List<HealthRoutes.Check>> results = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int i = 0; i < 20; i++) {
            waiters.add(Thread.ofPlatform().start(() -> results.add(checks.current())));
        }
        // All 20 are blocked (on the shared round, or they would be blocked in probes of their own).
        waitFor("20 callers waiting", Duration.ofSeconds(5),
                () -> waiters.stream().allMatch(t -> t.getState() == Thread.State.WAITING));
        release.countDown();
        prober.join();
        for (Thread t : waiters) {
            t.join();
        }
        assertEquals(1, probes.get());
        assertEquals(20, results.size());
        results.forEach(r -> assertSame(first.get(), r));
    }

    @Test
    void aRoundIsReusedUntilItIsMaxAgeOldThenProbedAgain() {
        BackendChecks checks = new BackendChecks(() -> up(probes.incrementAndGet()), MAX_AGE, now::get);
        List<HealthRoutes.Check> a = checks.current();
        now.addAndGet(MAX_AGE.toNanos() - 1);
        for (int i = 0; i < 100; i++) {
            assertSame(a, checks.current());
        }
        assertEquals(1, probes.get());
        now.addAndGet(1);
        assertEquals(2, checks.current().getFirst().latencyMs());
        assertEquals(2, probes.get());
    }

    @Test
    void aProbeThatThrowsIsNotCachedAndDoesNotWedgeLaterCallers() {
        BackendChecks checks = new BackendChecks(() -> {
            if (probes.incrementAndGet() == 1) {
                throw new IllegalStateException("boom");
            }
            return up(probes.get());
        }, MAX_AGE, now::get);
        assertThrows(CompletionException.class, checks::current);
        assertEquals(2, checks.current().getFirst().latencyMs());
        assertEquals(2, probes.get());
    }
}
