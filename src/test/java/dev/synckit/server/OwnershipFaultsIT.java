package dev.synckit.server;

import dev.synckit.server.LoadClient.Outcome;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static dev.synckit.server.FaultCluster.DOCS;
import static dev.synckit.server.FaultCluster.eventually;
import static dev.synckit.server.FaultCluster.log;
import static dev.synckit.server.FaultCluster.ms;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Faults of a document's owner (package {@code cluster}: the instance holding the document's Redis lease
 * commits its writes with a fencing epoch, the others forward to it), on {@link FaultCluster}'s three
 * processes with writers on every instance: the owner SIGKILLed, SIGSTOPped past its lease, SIGTERMed;
 * Redis restarted; a rolling restart. After each, every acknowledged write is in PostgreSQL once and every
 * client converges to it ({@link FaultRun#verify}). Each case starts from three live instances with every
 * client on its home instance. Lease and statement timeouts are the defaults, the forward timeout is 2 s (the
 * default is 10 s: a shorter one also exercises waiting on a slow but live owner); commits take one write
 * each, and the clients wait longer for an answer than any pause lasts (both for case 2). Server logs go to
 * {@code target/ownership-faults/}.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class OwnershipFaultsIT {
    /** Set explicitly because the bounds below are derived from them (the lease is the default). */
    private static final Duration LEASE = Duration.ofMillis(5000);
    private static final Duration FORWARD_TIMEOUT = Duration.ofMillis(2000);
    /** synckit.storage.socket-timeout-ms, PostgreSQL's statement and idle-in-transaction timeout (the default). */
    private static final Duration STATEMENT_TIMEOUT = Duration.ofMillis(5000);
    /** Longer than any pause below, so a client does not resend what a stopped owner holds (see case 2). */
    private static final Duration WRITE_TIMEOUT = Duration.ofSeconds(20);
    /** The document whose owner the faults hit; the load alternates between it and the other one. */
    private static final String HOT = DOCS.getFirst();
    private static final String FENCED = "synckit_ownership_fenced_commits_total";
    private static final String FORWARDED = "synckit_forwarded_writes_total";

    private static FaultCluster cluster;
    private static FaultRun run;

    @BeforeAll
    static void startCluster() throws Exception {
        cluster = FaultCluster.start("ownership-faults", Map.of(
                "SYNCKIT_CLUSTER_LEASE_dash_MS", String.valueOf(LEASE.toMillis()),
                "SYNCKIT_CLUSTER_FORWARD_dash_TIMEOUT_dash_MS", String.valueOf(FORWARD_TIMEOUT.toMillis()),
                "SYNCKIT_STORAGE_SOCKET_dash_TIMEOUT_dash_MS", String.valueOf(STATEMENT_TIMEOUT.toMillis()),
                // One write per transaction: what queues behind a stalled commit stays queued (see case 2).
                "SYNCKIT_STORAGE_GROUP_dash_COMMIT_MAX_dash_BATCH", "1"), WRITE_TIMEOUT);
        run = cluster.run;
        run.load(Duration.ofSeconds(3));
        run.verify("baseline");
        // The faults below are the owner's only if the load goes through ownership: writes are forwarded.
        double forwarded = 0;
        for (ServerProcess in : cluster.instances) {
            forwarded += Math.max(0, in.metric(FORWARDED));
        }
        log("baseline: %.0f writes forwarded to their document's owner", forwarded);
        assertTrue(forwarded > 0, "no write was forwarded: document ownership is not in effect");
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) {
            run.stopLoad();
            run.assertNoUnexpectedErrors();
            cluster.close();
        }
    }

    /** Whatever the previous case left down comes back, and the clients return to their home instances. */
    @BeforeEach
    void everyInstanceUp() throws Exception {
        for (ServerProcess in : cluster.instances) {
            if (in.suspended) {
                in.resume();
            }
            if (!in.alive()) {
                in.start();
                in.awaitReady();
            }
        }
        run.rebalance();
        run.load(Duration.ofSeconds(2));
    }

    @Test
    @Order(1)
    void ownerKilledMidLoadIsReplacedWithinALeaseAndAForwardTimeout() throws Exception {
        long t0 = System.nanoTime();
        ServerProcess victim = cluster.awaitOwner(HOT, LEASE);
        Set<String> victimDocs = ownedBy(victim);
        List<LoadClient> elsewhere = run.clients.stream().filter(c -> c.at() != victim).toList();
        log("case 1: SIGKILL %s (pid %d), owner of %s, under load from %d clients elsewhere", victim.name, victim.pid(),
                victimDocs, elsewhere.size());
        long killedAt = System.nanoTime();
        victim.kill();

        // Takeover: until a write sent after the kill by each client of another instance is acknowledged.
        Duration bound = LEASE.plus(FORWARD_TIMEOUT).plusSeconds(3);
        eventually(bound.plusSeconds(10), () -> elsewhere.stream().allMatch(c -> firstAckMs(c, victimDocs, killedAt) >= 0),
                () -> "clients of the surviving instances got no ack for " + victimDocs + " within " + bound.plusSeconds(10));
        List<Long> perClient = elsewhere.stream().map(c -> firstAckMs(c, victimDocs, killedAt)).sorted().toList();
        long takeover = perClient.getLast();
        ServerProcess successor = cluster.awaitOwner(HOT, LEASE);
        log("case 1: takeover of %s by %s: %d ms after the SIGKILL (per client %s ms; bound %d ms)", victimDocs,
                successor.name, takeover, perClient, bound.toMillis());
        run.load(Duration.ofSeconds(2));
        run.verify("after SIGKILL of owner " + victim.name);
        assertTrue(takeover < bound.toMillis(), "takeover took " + takeover + " ms, bound " + bound.toMillis() + " ms");
        log("case 1 took %d ms", ms(t0));
    }

    /**
     * The paused owner must have commits queued under its epoch when it stops, or it has nothing to be fenced:
     * the test holds the document's row lock (which every commit takes first) for a moment, so the owner's
     * committer waits on it and the writes of its own clients and the forwarded ones pile up behind it (one
     * write per transaction, so only one of them is in the waiting transaction); then the owner stops and the
     * lock goes to its waiting transaction. PostgreSQL ends that transaction once it has been idle for the
     * statement timeout (idle_in_transaction_session_timeout), which lets the new owner's claim through; after
     * SIGCONT the queued writes meet the raised epoch.
     *
     * <p>The clients' write timeout outlasts the pause: a client resending elsewhere would have the new owner
     * commit the write first, and the paused owner's copy would then be a duplicate (checked before the epoch)
     * rather than fenced. That is what happens to the forwarded writes: their forwarders resend them after the
     * forward timeout, and the new owner commits them as soon as it has claimed the document. So the fenced
     * ones are the paused owner's own clients' writes: two clients, at most one of them in the waiting
     * transaction, whose write fails when PostgreSQL ends it.
     */
    @Test
    @Order(2)
    void pausedOwnerIsFencedAfterItsLeaseMovedOn() throws Exception {
        long t0 = System.nanoTime();
        ServerProcess owner = cluster.awaitOwner(HOT, LEASE);
        double fencedBefore = Math.max(0, owner.metric(FENCED));
        long epochBefore = epoch(HOT);
        try (Connection sql = cluster.db.connect()) {
            sql.setAutoCommit(false);
            try (PreparedStatement lock = sql.prepareStatement("SELECT 1 FROM documents WHERE id = ? FOR UPDATE")) {
                lock.setString(1, HOT);
                assertTrue(lock.executeQuery().next(), HOT + " has no row yet");
            }
            run.load(Duration.ofMillis(500));
            log("case 2: SIGSTOP %s (pid %d), owner of %s at epoch %d, with commits queued behind a row lock", owner.name,
                    owner.pid(), ownedBy(owner), epochBefore);
            owner.suspend();
            sql.commit();
        }
        long stoppedAt = System.nanoTime();
        Duration claimBound = LEASE.plus(STATEMENT_TIMEOUT).plusSeconds(5);
        eventually(claimBound, () -> epoch(HOT) > epochBefore,
                () -> "no instance claimed " + HOT + " within " + claimBound + " of stopping its owner " + owner.name);
        long claimedMs = ms(stoppedAt);
        ServerProcess successor = cluster.awaitOwner(HOT, LEASE);
        run.load(Duration.ofMillis(500));
        long pausedMs = ms(stoppedAt);
        owner.resume();
        log("case 2: %s claimed %s (epoch %d) %d ms into the pause; SIGCONT %s after %d ms", successor.name, HOT, epoch(HOT),
                claimedMs, owner.name, pausedMs);
        run.load(Duration.ofSeconds(3));
        double fenced = owner.metric(FENCED) - fencedBefore;
        ServerProcess now = cluster.owner(HOT);
        log("case 2: %s counted %.0f fenced commits after SIGCONT; %s owns %s", owner.name, fenced,
                now == null ? "no instance" : now.name, HOT);
        run.verify("after SIGSTOP/SIGCONT of owner " + owner.name);
        assertTrue(pausedMs > LEASE.toMillis(), "the pause (" + pausedMs + " ms) was not longer than the lease");
        assertTrue(fenced > 0, owner.name + " resumed with commits queued under its old epoch, but none was fenced");
        log("case 2 took %d ms", ms(t0));
    }

    @Test
    @Order(3)
    void ownerTerminatedMidLoadHandsOverWithoutAnErrorElsewhere() throws Exception {
        long t0 = System.nanoTime();
        ServerProcess owner = cluster.awaitOwner(HOT, LEASE);
        Set<String> ownerDocs = ownedBy(owner);
        List<LoadClient> elsewhere = run.clients.stream().filter(c -> c.at() != owner).toList();
        Map<LoadClient, Integer> errorsBefore = new HashMap<>();
        elsewhere.forEach(c -> errorsBefore.put(c, c.errorReplies.get() + c.unexpected.size()));
        log("case 3: SIGTERM %s (pid %d), owner of %s", owner.name, owner.pid(), ownerDocs);
        long termAt = System.nanoTime();
        int exit = owner.terminate();
        run.load(Duration.ofSeconds(4));
        List<Long> perClient = elsewhere.stream().map(c -> firstAckMs(c, ownerDocs, termAt)).sorted().toList();
        log("case 3: %s exited with %d; first ack for %s after the SIGTERM per client of the others: %s ms", owner.name,
                exit, ownerDocs, perClient);
        List<String> errors = new ArrayList<>();
        for (LoadClient c : elsewhere) {
            int more = c.errorReplies.get() + c.unexpected.size() - errorsBefore.get(c);
            if (more > 0) {
                errors.add(c.name + " on " + c.at().name + ": " + more + " error(s) " + c.unexpected);
            }
        }
        run.verify("after SIGTERM of owner " + owner.name);
        assertEquals(List.of(), errors, "clients of other instances got errors while " + owner.name + " drained");
        assertFalse(perClient.contains(-1L), "a client of another instance got no ack after the hand-over: " + perClient);
        log("case 3 took %d ms", ms(t0));
    }

    @Test
    @Order(4)
    void redisRestartMidLoadLosesNoWriteAndOwnershipResumes() throws Exception {
        long t0 = System.nanoTime();
        log("case 4: stop Redis (%s)", cluster.redis.describe());
        cluster.redis.stop();
        run.load(Duration.ofSeconds(3));
        cluster.redis.start();
        long backAt = System.nanoTime();
        log("case 4: Redis back");
        // The leases were lost with Redis (or outlived the outage); either way the writes running take them again.
        for (String doc : DOCS) {
            ServerProcess owner = cluster.awaitOwner(doc, LEASE.multipliedBy(3));
            log("case 4: %s owned by %s %d ms after Redis came back", doc, owner.name, ms(backAt));
        }
        run.load(Duration.ofSeconds(3));
        run.verify("after Redis restart");
        log("case 4 took %d ms", ms(t0));
    }

    @Test
    @Order(5)
    void rollingRestartMidLoadLosesNoWrite() throws Exception {
        long t0 = System.nanoTime();
        int errorsBefore = errorReplies();
        for (ServerProcess in : cluster.instances) {
            log("case 5: SIGTERM %s (pid %d, owns %s) and start it again", in.name, in.pid(), ownedBy(in));
            int exit = in.terminate();
            log("case 5: %s exited with %d", in.name, exit);
            in.start();
            in.awaitReady();
            run.load(Duration.ofSeconds(2));
        }
        run.rebalance();
        run.load(Duration.ofSeconds(2));
        int errors = errorReplies() - errorsBefore;
        run.verify("after rolling restart");
        log("case 5: %d error replies during the rolling restart", errors);
        assertEquals(0, errors, "writes answered with an error during the rolling restart");
        log("case 5 took %d ms", ms(t0));
    }

    // ------------------------------------------------------------------------------------------------

    /** The documents whose lease this instance holds. */
    private static Set<String> ownedBy(ServerProcess in) throws Exception {
        String id = in.instanceId();
        assertNotNull(id, in.name + " shows no cluster instance id in /health");
        Set<String> out = new LinkedHashSet<>();
        for (String doc : DOCS) {
            if (id.equals(cluster.leaseHolder(doc))) {
                out.add(doc);
            }
        }
        return out;
    }

    /** Ms from {@code since} until the first ack of a write to one of {@code docs} sent after it; -1 if none yet. */
    private static long firstAckMs(LoadClient c, Set<String> docs, long since) {
        for (Outcome o : c.outcomes) {
            if (o.acked() && o.attemptNanos() > since && docs.contains(o.write().doc())) {
                return (o.answeredNanos() - since) / 1_000_000;
            }
        }
        return -1;
    }

    /** The document's ownership epoch in storage (raised by every claim); 0 before the first. */
    private static long epoch(String doc) {
        try (Connection sql = cluster.db.connect();
             PreparedStatement q = sql.prepareStatement("SELECT epoch FROM synckit_owner_epochs WHERE document_id = ?")) {
            q.setString(1, doc);
            try (ResultSet rs = q.executeQuery()) {
                return rs.next() ? rs.getLong(1) : 0;
            }
        } catch (SQLException e) {
            throw new IllegalStateException(e);
        }
    }

    private static int errorReplies() {
        return run.clients.stream().mapToInt(c -> c.errorReplies.get()).sum();
    }
}
