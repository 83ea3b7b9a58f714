package dev.synckit.server.crdt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * A counter as the SDK's {@code SyncCounter} edits it: per writing client, the sum of its increments and of
 * its decrements. The value is their difference. Keeping the totals per client (rather than one number)
 * says who moved it and keeps every total non-negative, so a hostile writer can only move its own pair.
 * Immutable.
 */
public record PnCounter(Map<String, Long> positive, Map<String, Long> negative) {
    /** The SDK keeps counters in JavaScript numbers: beyond this, sums stop being exact on the clients. */
    public static final long MAX = (1L << 53) - 1;
    public static final PnCounter ZERO = new PnCounter(Map.of(), Map.of());

    public PnCounter {
        positive = Map.copyOf(positive);
        negative = Map.copyOf(negative);
    }

    public long value() {
        return sum(positive) - sum(negative);
    }

    /**
     * Adds {@code amount} (≥ 0) to the client's increments or decrements.
     *
     * @throws CrdtException if a total, or the value, would leave the range the SDK represents exactly
     */
    public PnCounter add(String clientId, boolean increment, long amount) throws CrdtException {
        if (amount < 0 || amount > MAX) {
            throw new CrdtException("counter amount must be an integer from 0 to " + MAX + ", got " + amount);
        }
        Map<String, Long> side = new HashMap<>(increment ? positive : negative);
        long total = side.getOrDefault(clientId, 0L) + amount;
        if (total > MAX || Math.abs(value() + (increment ? amount : -amount)) > MAX) {
            throw new CrdtException("counter would pass " + MAX + ", the largest value SDK clients count exactly");
        }
        side.put(clientId, total);
        return increment ? new PnCounter(side, negative) : new PnCounter(positive, side);
    }

    public ObjectNode toJson() {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        new TreeMap<>(positive).forEach(out.putObject("positive")::put);
        new TreeMap<>(negative).forEach(out.putObject("negative")::put);
        return out;
    }

    public static PnCounter fromJson(JsonNode json) {
        return new PnCounter(totals(json.path("positive")), totals(json.path("negative")));
    }

    private static Map<String, Long> totals(JsonNode side) {
        Map<String, Long> out = new HashMap<>();
        side.fields().forEachRemaining(e -> out.put(e.getKey(), e.getValue().asLong()));
        return out;
    }

    private static long sum(Map<String, Long> side) {
        long s = 0;
        for (long v : side.values()) {
            s += v;
        }
        return s;
    }
}
