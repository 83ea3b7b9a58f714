package dev.synckit.server.status;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.health.HealthRoutes;
import dev.synckit.server.protocol.Json;

import java.util.List;

/**
 * One instance's figures at one second, as this instance sampled them. Published to Redis and served as
 * JSON; the rates are per second over the last sample, the series per second oldest first, ending at
 * {@code sampledAt}. Write and broadcast totals are the process's meters (one instance per process).
 * {@code checkedAt} dates the backend checks (0: none yet); {@code watched} tells the other instances that
 * this one's page is being looked at, so they keep their checks fresh too.
 */
record Snapshot(String instanceId, String host, long sampledAt, long startedAt, long uptimeSeconds,
                int connections, int users, int cachedDocuments, Integer ownedDocuments,
                long writesTotal, long broadcastsTotal, double writesPerSecond, double broadcastsPerSecond,
                double[] writesSeries, double[] broadcastsSeries, double[] connectionsSeries,
                List<HealthRoutes.Check> checks, long checkedAt, boolean watched, List<DocumentRow> bySubscribers, List<DocumentRow> byWrites) {

    /** {@code ref} stands in for {@code id} where the caller may not see ids; recent = about the last minute. */
    record DocumentRow(String id, String ref, int subscribers, long recentWrites, long lastModified) {}

    ObjectNode toJson() {
        ObjectNode o = Json.object().put("instanceId", instanceId).put("host", host).put("sampledAt", sampledAt)
                .put("startedAt", startedAt).put("uptimeSeconds", uptimeSeconds)
                .put("connections", connections).put("users", users).put("cachedDocuments", cachedDocuments);
        if (ownedDocuments != null) {
            o.put("ownedDocuments", ownedDocuments);
        }
        o.put("writesTotal", writesTotal).put("broadcastsTotal", broadcastsTotal)
                .put("writesPerSecond", round(writesPerSecond)).put("broadcastsPerSecond", round(broadcastsPerSecond));
        ObjectNode series = o.putObject("series").put("intervalMs", 1000).put("endsAt", sampledAt);
        array(series.putArray("writes"), writesSeries);
        array(series.putArray("broadcasts"), broadcastsSeries);
        array(series.putArray("connections"), connectionsSeries);
        o.put("checkedAt", checkedAt).put("watched", watched);
        ArrayNode c = o.putArray("checks");
        for (HealthRoutes.Check check : checks) {
            ObjectNode x = c.addObject().put("name", check.name()).put("status", check.status())
                    .put("latencyMs", check.latencyMs());
            if (check.error() != null) {
                x.put("error", check.error());
            }
        }
        ObjectNode docs = o.putObject("documents");
        rows(docs.putArray("bySubscribers"), bySubscribers);
        rows(docs.putArray("byWrites"), byWrites);
        return o;
    }

    private static void array(ArrayNode out, double[] values) {
        for (double v : values) {
            out.add(v);
        }
    }

    private static void rows(ArrayNode out, List<DocumentRow> rows) {
        rows.forEach(r -> out.addObject().put("id", r.id()).put("ref", r.ref()).put("subscribers", r.subscribers())
                .put("recentWrites", r.recentWrites()).put("lastModified", r.lastModified()));
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }
}
