package dev.synckit.server.bench;

import java.util.Arrays;

/** Latency samples in nanoseconds; one instance per recording thread, merged at the end. */
final class Latencies {
    private long[] samples = new long[1024];
    private int size;

    void add(long nanos) {
        if (size == samples.length) {
            samples = Arrays.copyOf(samples, size * 2);
        }
        samples[size++] = nanos;
    }

    int size() {
        return size;
    }

    static Latencies merge(Iterable<Latencies> parts) {
        Latencies all = new Latencies();
        for (Latencies p : parts) {
            synchronized (p) {
                for (int i = 0; i < p.size; i++) {
                    all.add(p.samples[i]);
                }
            }
        }
        Arrays.sort(all.samples, 0, all.size);
        return all;
    }

    /** The q-quantile in milliseconds of sorted samples (0 when empty). */
    double percentileMillis(double q) {
        if (size == 0) {
            return 0;
        }
        int index = (int) Math.min(size - 1, Math.ceil(q * size) - 1);
        return samples[Math.max(0, index)] / 1e6;
    }

    double maxMillis() {
        return size == 0 ? 0 : samples[size - 1] / 1e6;
    }
}
