package dev.synckit.server.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;

/** State shared by the clients of one benchmark run. */
final class Run {
    final double rate;
    final List<LoadClient> clients = new ArrayList<>();
    final CountDownLatch subscribed;
    final AtomicLong errors = new AtomicLong();
    final AtomicLong disconnects = new AtomicLong();
    final AtomicLong ackedTotal = new AtomicLong();
    final AtomicLong ackedMeasured = new AtomicLong();
    private volatile long measureFrom = Long.MAX_VALUE;
    private volatile long measureUntil = Long.MAX_VALUE;
    private volatile boolean running = true;

    Run(double rate, int clients) {
        this.rate = rate;
        this.subscribed = new CountDownLatch(clients);
    }

    LoadClient client(int index) {
        return clients.get(index);
    }

    void measure(long fromNanos, long untilNanos) {
        measureFrom = fromNanos;
        measureUntil = untilNanos;
    }

    boolean running() {
        return running;
    }

    void stop() {
        running = false;
    }

    private boolean inWindow(long sent, long now) {
        return sent != 0 && sent >= measureFrom && now <= measureUntil;
    }

    void acked(long sent, long now, Latencies into) {
        ackedTotal.incrementAndGet();
        if (inWindow(sent, now)) {
            ackedMeasured.incrementAndGet();
            synchronized (into) {
                into.add(now - sent);
            }
        }
    }

    void visible(long sent, long now, Latencies into) {
        if (inWindow(sent, now)) {
            synchronized (into) {
                into.add(now - sent);
            }
        }
    }
}
