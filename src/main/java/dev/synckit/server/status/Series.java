package dev.synckit.server.status;

/**
 * The last {@code capacity} per-second values of one figure, oldest first when read. Only the sampler
 * thread writes and reads it (snapshots copy it out), so it needs no locking.
 */
final class Series {
    private final double[] values;
    private int next;
    private int size;

    Series(int capacity) {
        this.values = new double[capacity];
    }

    void add(double value) {
        values[next] = value;
        next = (next + 1) % values.length;
        size = Math.min(size + 1, values.length);
    }

    /** The values oldest first, rounded to 0.1 (the page shows rates, not exact counts). */
    double[] toArray() {
        double[] out = new double[size];
        int start = (next - size + values.length) % values.length;
        for (int i = 0; i < size; i++) {
            out[i] = Math.round(values[(start + i) % values.length] * 10) / 10.0;
        }
        return out;
    }

    double last() {
        return size == 0 ? 0 : values[(next - 1 + values.length) % values.length];
    }
}
