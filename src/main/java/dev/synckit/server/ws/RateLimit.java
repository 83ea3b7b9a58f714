package dev.synckit.server.ws;

/**
 * Messages per minute per connection as a token bucket: a burst of the whole minute's allowance, then a
 * steady refill. Same average as the TS server's sliding window, in constant memory per connection.
 */
final class RateLimit {
    private final double capacity;
    private final double perNano;
    private double tokens;
    private long last;

    RateLimit(int perMinute, long nowNanos) {
        this.capacity = perMinute;
        this.perNano = perMinute / 60e9;
        this.tokens = perMinute;
        this.last = nowNanos;
    }

    /** Called only from the connection's reading thread. */
    boolean tryAcquire(long nowNanos) {
        tokens = Math.min(capacity, tokens + (nowNanos - last) * perNano);
        last = nowNanos;
        if (tokens >= 1) {
            tokens -= 1;
            return true;
        }
        return false;
    }
}
