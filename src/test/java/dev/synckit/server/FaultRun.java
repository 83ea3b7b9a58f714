package dev.synckit.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.LoadClient.Outcome;
import dev.synckit.server.LoadClient.Write;
import dev.synckit.server.ServerProcess.Stats;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.testing.TestDatabase;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static dev.synckit.server.FaultCluster.*;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The load of a fault test and its checks: the clients, the pauses, and after each fault the verification that
 * every acknowledged write is in PostgreSQL once and in every client, live states included.
 */
final class FaultRun implements AutoCloseable {
    final TestDatabase db;
    final List<ServerProcess> instances;
    final List<LoadClient> clients = new ArrayList<>();
    /** Per instance name: the pid, RSS and threads of the first and the latest check. */
    final Map<String, List<String>> statsLog = new TreeMap<>();
    final Map<Long, Stats> firstStats = new HashMap<>();
    final Map<Long, Stats> lastStats = new HashMap<>();
    int ackedBefore;
    int erroredBefore;

    FaultRun(TestDatabase db, List<ServerProcess> instances) {
        this.db = db;
        this.instances = instances;
    }

    void load(Duration d) throws InterruptedException {
        Thread.sleep(d.toMillis());
        for (LoadClient c : clients) {
            if (c.failure != null) {
                throw new AssertionError(c.name + "'s load thread failed", c.failure);
            }
        }
    }

    /** Pauses the load, checks every invariant, logs the counts, resumes. */
    void verify(String phase) throws Exception {
        long t0 = System.nanoTime();
        for (LoadClient c : clients) {
            c.pause();
        }
        for (LoadClient c : clients) {
            c.ensureConnected();
        }
        List<Outcome> acked = new ArrayList<>();
        List<Outcome> failed = new ArrayList<>();
        int inDoubt = 0;
        for (LoadClient c : clients) {
            for (Outcome o : c.outcomes) {
                (o.acked() ? acked : failed).add(o);
            }
            inDoubt += c.inDoubt != null ? 1 : 0;
        }

        // PostgreSQL holds every acknowledged write, each applied exactly once.
        Map<String, Map<String, JsonNode>> stored = storedFields();
        for (Outcome o : acked) {
            Write w = o.write();
            JsonNode v = stored.get(w.doc()).get(w.field());
            assertTrue(v != null && w.value().equals(v.asText()),
                    phase + ": acknowledged write " + w + " is not in PostgreSQL (found " + v + ")");
        }
        List<String> duplicates = duplicateDeltas();
        assertTrue(duplicates.isEmpty(), phase + ": writes applied more than once: " + duplicates);
        int failedButStored = 0;
        for (Outcome o : failed) {
            JsonNode v = stored.get(o.write().doc()).get(o.write().field());
            if (v != null && !o.afterLostReply()) {
                failedButStored++;
            }
        }

        // Every client reads exactly what is stored (sync_request on whatever instance it is on).
        for (LoadClient c : clients) {
            for (String doc : DOCS) {
                Map<String, JsonNode> state = c.read(doc);
                if (!state.equals(stored.get(doc))) {
                    fail(phase + ": " + c.name + " on " + c.at().name + " reads " + describeDiff(state, stored.get(doc))
                            + " for " + doc);
                }
            }
        }
        // Every client's live state (its subscribe snapshot plus the deltas broadcast since) converges.
        for (LoadClient c : clients) {
            for (String doc : DOCS) {
                eventually(Duration.ofSeconds(15), () -> c.live(doc).equals(stored.get(doc)),
                        () -> phase + ": " + c.name + " on " + c.at().name + " never converged on " + doc + ": "
                                + describeDiff(c.live(doc), stored.get(doc)));
            }
        }
        // Each live instance counts exactly the connections and subscribers our clients hold there.
        for (ServerProcess in : instances) {
            if (!in.alive()) {
                continue;
            }
            long expected = clients.stream().filter(c -> c.at() == in).count();
            eventually(Duration.ofSeconds(10), () -> {
                JsonNode h = in.health();
                if (h == null || h.path("connections").path("totalConnections").asLong(-1) != expected) {
                    return false;
                }
                for (JsonNode d : h.path("documents").path("documents")) {
                    if (DOCS.contains(d.path("id").asText()) && d.path("subscribers").asLong() != expected) {
                        return false;
                    }
                }
                return true;
            }, () -> phase + ": " + in.name + " reports " + in.health() + " but our clients hold " + expected
                    + " connections there");
        }

        StringBuilder resources = new StringBuilder();
        for (ServerProcess in : instances) {
            if (!in.alive()) {
                resources.append(' ').append(in.name).append("=down");
                continue;
            }
            Stats s = in.stats();
            firstStats.putIfAbsent(in.pid(), s);
            lastStats.put(in.pid(), s);
            statsLog.computeIfAbsent(in.name, k -> new ArrayList<>())
                    .add(phase + ": pid " + in.pid() + " rss " + s.rssKb() / 1024 + " MB threads " + s.threads());
            resources.append(String.format(" %s(pid %d)=%dMB/%dthr", in.name, in.pid(), s.rssKb() / 1024, s.threads()));
        }
        int errorReplies = clients.stream().mapToInt(c -> c.errorReplies.get()).sum();
        List<Long> all = new ArrayList<>();
        clients.forEach(c -> c.outcomes.stream().skip(c.reported).forEach(o -> all.add(o.latencyMs())));
        clients.forEach(c -> c.reported = c.outcomes.size());
        all.sort(null);
        log("VERIFIED [%s] acked %d (+%d this phase), verified %d in PostgreSQL and in %d clients' sync state and"
                        + " live state; failed (error) %d (+%d), of which stored anyway %d; error replies %d;"
                        + " in doubt now %d; reconnects %d; writes resent after a lost reply %d; reply latency ms p50/p99/max %s; fields per doc %s;"
                        + " verify took %d ms;%s",
                phase, acked.size(), acked.size() - ackedBefore, acked.size(), clients.size(), failed.size(),
                failed.size() - erroredBefore, failedButStored, errorReplies, inDoubt,
                clients.stream().mapToInt(c -> c.reconnects).sum() - clients.size(),
                clients.stream().mapToInt(c -> c.resent).sum(), percentiles(all),
                sizes(stored), ms(t0), resources);
        ackedBefore = acked.size();
        erroredBefore = failed.size();
        for (LoadClient c : clients) {
            c.resume();
        }
    }

    /** Clients not on their home instance go back to it when it is up again (another re-subscribe). */
    void rebalance() throws Exception {
        for (LoadClient c : clients) {
            c.pause();
        }
        int moved = 0;
        for (LoadClient c : clients) {
            if (c.at() != instances.get(c.home) && instances.get(c.home).alive()) {
                c.reconnectTo(c.home);
                moved++;
            }
        }
        log("rebalanced: %d clients back on their home instance", moved);
        for (LoadClient c : clients) {
            c.resume();
        }
    }

    /** Writes sent after the cut and answered before the restore must all have failed. */
    void checkOutageWindow(long cutAt, long restoreAt) {
        int errors = 0;
        List<Outcome> acks = new ArrayList<>();
        for (LoadClient c : clients) {
            for (Outcome o : c.outcomes) {
                if (o.write().sentNanos() > cutAt && o.answeredNanos() < restoreAt) {
                    if (o.acked()) {
                        acks.add(o);
                    } else {
                        errors++;
                    }
                }
            }
        }
        long firstAckAfter = Long.MAX_VALUE;
        int errorsAfter = 0;
        for (LoadClient c : clients) {
            for (Outcome o : c.outcomes) {
                if (o.attemptNanos() > restoreAt) {
                    if (o.acked()) {
                        firstAckAfter = Math.min(firstAckAfter, o.answeredNanos());
                    } else {
                        errorsAfter++;
                    }
                }
            }
        }
        log("outage window (%d ms): %d writes answered with error, %d with ack; after the restore: first ack after"
                        + " %d ms, %d more errors", (restoreAt - cutAt) / 1_000_000, errors, acks.size(),
                firstAckAfter == Long.MAX_VALUE ? -1 : (firstAckAfter - restoreAt) / 1_000_000, errorsAfter);
        assertTrue(acks.isEmpty(), "writes acknowledged while PostgreSQL was unreachable: " + acks);
        assertTrue(errors > 0, "no write was even attempted while PostgreSQL was unreachable");
    }

    /** The process that lived through every fault must not keep growing threads or memory. */
    void checkResources() {
        statsLog.forEach((name, lines) -> lines.forEach(l -> log("resources %s %s", name, l)));
        boolean compared = false;
        for (Map.Entry<Long, Stats> e : firstStats.entrySet()) {
            Stats first = e.getValue();
            Stats last = lastStats.get(e.getKey());
            if (first == last) {
                continue; // checked only once
            }
            compared = true;
            log("pid %d: threads %d -> %d, rss %d MB -> %d MB", e.getKey(), first.threads(), last.threads(),
                    first.rssKb() / 1024, last.rssKb() / 1024);
            assertTrue(last.threads() - first.threads() <= MAX_THREAD_GROWTH,
                    "pid " + e.getKey() + " grew from " + first.threads() + " to " + last.threads() + " threads");
            assertTrue(last.rssKb() - first.rssKb() <= MAX_RSS_GROWTH_KB,
                    "pid " + e.getKey() + " grew from " + first.rssKb() + " kB to " + last.rssKb() + " kB RSS");
        }
        assertTrue(compared, "no instance was measured twice");
    }

    void assertNoUnexpectedErrors() {
        List<String> unexpected = new ArrayList<>();
        clients.forEach(c -> unexpected.addAll(c.unexpected));
        assertTrue(unexpected.isEmpty(), "unexpected server messages: " + unexpected);
    }

    void stopLoad() throws InterruptedException {
        for (LoadClient c : clients) {
            c.stop();
        }
    }

    Map<String, Map<String, JsonNode>> storedFields() throws Exception {
        Map<String, Map<String, JsonNode>> out = new HashMap<>();
        DOCS.forEach(d -> out.put(d, new HashMap<>()));
        try (Connection sql = db.connect(); Statement s = sql.createStatement();
             ResultSet rs = s.executeQuery("SELECT id, state->'fields' FROM documents")) {
            while (rs.next()) {
                Map<String, JsonNode> fields = out.get(rs.getString(1));
                if (fields != null && rs.getString(2) != null) {
                    Json.MAPPER.readTree(rs.getString(2)).properties()
                            .forEach(e -> fields.put(e.getKey(), e.getValue()));
                }
            }
        }
        return out;
    }

    List<String> duplicateDeltas() throws Exception {
        List<String> out = new ArrayList<>();
        try (Connection sql = db.connect(); Statement s = sql.createStatement();
             ResultSet rs = s.executeQuery("SELECT document_id, field_path, count(*) FROM deltas"
                     + " GROUP BY document_id, field_path HAVING count(*) > 1 LIMIT 20")) {
            while (rs.next()) {
                out.add(rs.getString(1) + "/" + rs.getString(2) + " x" + rs.getLong(3));
            }
        }
        return out;
    }

    @Override
    public void close() {
        for (LoadClient c : clients) {
            try {
                c.stop();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            c.disconnect();
        }
    }
}
