package dev.synckit.server;

import dev.synckit.server.testing.TcpProxy;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import static dev.synckit.server.FaultCluster.REPLY_TIMEOUT;
import static dev.synckit.server.FaultCluster.log;
import static dev.synckit.server.FaultCluster.ms;

/**
 * Process-level cluster faults: three real server processes ({@code java -jar target/synckit-server.jar},
 * the artifact {@code package} built) on one PostgreSQL and one Redis, six clients writing distinct
 * field/value pairs to two shared documents, and in turn, with the load running:
 * <ol>
 *     <li>an instance SIGKILLed: its clients reconnect to another instance, re-subscribe and go on;</li>
 *     <li>an instance restarted (SIGTERM, then started again on the same port);</li>
 *     <li>Redis restarted (our own {@code redis-server} child when one is installed, otherwise a proxy cut);</li>
 *     <li>PostgreSQL unreachable for a few seconds (a {@link TcpProxy} between every instance and it):
 *     writes in that window must get {@code error}, never {@code ack}.</li>
 * </ol>
 * After each fault the load pauses and the test checks that every acknowledged write is in PostgreSQL
 * ({@code documents.state->'fields'}) and in every client's {@code sync_response}, that it was applied
 * once, that every client's live state (sync_response plus broadcast deltas) converges to what is
 * stored, that each instance counts exactly the connections it has, and records the processes' RSS and
 * thread counts, which must not keep growing. Server logs go to {@code target/cluster-faults/};
 * the cluster and the load are {@link FaultCluster}'s.
 */
class ClusterFaultsIT {
    @Test
    void acknowledgedWritesSurviveKillsRestartsAndBackendOutages() throws Exception {
        long started = System.nanoTime();
        try (FaultCluster cluster = FaultCluster.start("cluster-faults", Map.of(), REPLY_TIMEOUT)) {
            List<ServerProcess> instances = cluster.instances;
            FaultRun run = cluster.run;
            RedisNode redis = cluster.redis;
            TcpProxy pg = cluster.pg;
            run.load(Duration.ofSeconds(3));
            run.verify("baseline");

            // (1) SIGKILL: the victim's clients see their socket die and move to another instance.
            ServerProcess victim = instances.get(2);
            run.load(Duration.ofSeconds(2));
            log("fault 1: SIGKILL %s (pid %d)", victim.name, victim.pid());
            victim.kill();
            run.load(Duration.ofSeconds(3));
            run.verify("after SIGKILL of " + victim.name);
            victim.start();
            victim.awaitReady();
            run.rebalance();

            // (2) Graceful restart on the same port while the load runs.
            ServerProcess restarted = instances.get(1);
            run.load(Duration.ofSeconds(2));
            log("fault 2: SIGTERM %s (pid %d) and start it again on port %d", restarted.name, restarted.pid(), restarted.port);
            int exit = restarted.terminate();
            log("%s exited with %d", restarted.name, exit);
            restarted.start();
            restarted.awaitReady();
            run.load(Duration.ofSeconds(2));
            run.verify("after restart of " + restarted.name);
            run.rebalance();

            // (3) Redis restarted: writes keep being acknowledged; other instances catch up afterwards.
            run.load(Duration.ofSeconds(2));
            log("fault 3: stop Redis");
            redis.stop();
            run.load(Duration.ofSeconds(3));
            redis.start();
            log("fault 3: Redis back");
            run.load(Duration.ofSeconds(4));
            run.verify("after Redis restart");

            // (4) PostgreSQL unreachable: every write answered inside the window is an error.
            run.load(Duration.ofSeconds(2));
            log("fault 4: cut PostgreSQL");
            pg.cut();
            long cutAt = System.nanoTime();
            run.load(Duration.ofSeconds(3));
            long restoreAt = System.nanoTime();
            pg.restore();
            log("fault 4: PostgreSQL reachable again");
            run.load(Duration.ofSeconds(3));
            run.verify("after PostgreSQL outage");
            run.checkOutageWindow(cutAt, restoreAt);

            run.checkResources();
            run.stopLoad();
            run.assertNoUnexpectedErrors();
            log("done in %d ms", ms(started));
        }
    }
}
