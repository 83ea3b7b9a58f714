package dev.synckit.server.ws;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/** Connection caps, global and per client IP (PROTOCOL.md §2.4). */
final class Admission {
    private final int maxTotal;
    private final int maxPerIp;
    private final AtomicInteger total = new AtomicInteger();
    private final ConcurrentHashMap<String, Integer> perIp = new ConcurrentHashMap<>();

    Admission(int maxTotal, int maxPerIp) {
        this.maxTotal = maxTotal;
        this.maxPerIp = maxPerIp;
    }

    /** Admits the connection, or returns the close reason (the caller closes with 1008). */
    String admit(String ip) {
        boolean[] admitted = {false};
        perIp.compute(ip, (k, n) -> {
            int count = n == null ? 0 : n;
            if (count >= maxPerIp) {
                return n;
            }
            admitted[0] = true;
            return count + 1;
        });
        if (!admitted[0]) {
            return "Too many connections from your IP";
        }
        if (total.incrementAndGet() > maxTotal) {
            total.decrementAndGet();
            releaseIp(ip);
            return "Server at maximum capacity";
        }
        return null;
    }

    void release(String ip) {
        total.decrementAndGet();
        releaseIp(ip);
    }

    private void releaseIp(String ip) {
        perIp.computeIfPresent(ip, (k, n) -> n <= 1 ? null : n - 1);
    }

    int total() {
        return total.get();
    }
}
