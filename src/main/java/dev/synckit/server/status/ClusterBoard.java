package dev.synckit.server.status;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.pubsub.RedisFanOut;
import org.redisson.api.RBatch;
import org.redisson.api.RScoredSortedSetAsync;
import org.redisson.api.RedissonClient;
import org.redisson.client.codec.StringCodec;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.logging.Logger;

/**
 * The instances' snapshots in Redis: {@code <prefix>status:<instanceId>} holds one instance's latest snapshot
 * (JSON) for {@link #TTL}, and the sorted set {@code <prefix>status-instances} scores each instance id with
 * when it last published, so readers fetch the live ones with one range query and one MGET instead of a SCAN
 * over every key (the lease keys of all documents live in the same keyspace). An instance that stops
 * publishing drops out when its key expires; its set entry is trimmed by the next publisher.
 */
final class ClusterBoard {
    private static final Logger LOG = Logger.getLogger(ClusterBoard.class.getName());
    static final Duration TTL = Duration.ofSeconds(5);
    /** The set outlives the last instance by this much, then Redis drops it. */
    private static final Duration SET_TTL = Duration.ofMinutes(1);

    private final RedisFanOut redis;
    private final String setKey;
    private volatile boolean failing;

    ClusterBoard(RedisFanOut redis) {
        this.redis = redis;
        this.setKey = redis.channelPrefix() + "status-instances";
    }

    String key(String instanceId) {
        return redis.channelPrefix() + "status:" + instanceId;
    }

    /**
     * Writes this instance's snapshot and reads every live instance's (this one's included), blocking for at
     * most two round trips, each bounded by the Redis timeout. Redis down: an empty list and the reason,
     * logged once per outage; the page then shows this instance alone.
     */
    Result exchange(String instanceId, ObjectNode snapshot) {
        RedissonClient client = redis.client();
        if (client == null) {
            return failed("Redis not connected yet");
        }
        try {
            long now = System.currentTimeMillis();
            RBatch batch = client.createBatch();
            batch.<String>getBucket(key(instanceId), StringCodec.INSTANCE).setAsync(snapshot.toString(), TTL);
            RScoredSortedSetAsync<String> set = batch.getScoredSortedSet(setKey, StringCodec.INSTANCE);
            set.addAsync(now, instanceId);
            set.removeRangeByScoreAsync(Double.NEGATIVE_INFINITY, true, now - TTL.toMillis(), false);
            var live = set.valueRangeAsync(now - TTL.toMillis(), true, Double.POSITIVE_INFINITY, true);
            set.expireAsync(SET_TTL);
            batch.execute();
            Collection<String> ids = live.toCompletableFuture().join();
            List<ObjectNode> out = new ArrayList<>();
            if (!ids.isEmpty()) {
                Map<String, String> found = client.getBuckets(StringCodec.INSTANCE)
                        .get(ids.stream().map(this::key).toArray(String[]::new));
                for (String json : found.values()) {
                    JsonNode node = Json.MAPPER.readTree(json);
                    if (node instanceof ObjectNode o) {
                        out.add(o);
                    }
                }
            }
            if (failing) {
                failing = false;
                LOG.info("status snapshots: Redis reachable again");
            }
            return new Result(out, null);
        } catch (Exception e) { // Redis errors, timeouts, a malformed snapshot: the page must keep working
            return failed(e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    private Result failed(String reason) {
        if (!failing) {
            failing = true;
            LOG.warning("status snapshots: cannot exchange them through Redis (" + reason
                    + "); showing this instance only until it is back");
        }
        return new Result(List.of(), reason);
    }

    /** The snapshots read (this instance's among them), or why none could be. */
    record Result(List<ObjectNode> snapshots, String error) {}
}
