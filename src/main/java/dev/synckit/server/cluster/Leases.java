package dev.synckit.server.cluster;

import org.redisson.api.RScript;
import org.redisson.api.RedissonClient;
import org.redisson.client.codec.StringCodec;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * Document leases in Redis: key {@code {prefix}owner:{documentId}}, value the owner's instance id, with a
 * TTL. Renewal and release are scripts that act only while the value is still ours, so an instance that
 * lost a lease (it expired while the instance was paused) can never extend or delete the new owner's.
 * A lease only decides who should write; {@code StorageAdapter.claim} and the fencing check in the commit
 * decide who can.
 */
final class Leases {
    /** PEXPIRE each key still holding ARGV[1]; returns the 1-based positions of the keys that do not. */
    private static final String RENEW = """
            local lost = {}
            for i, key in ipairs(KEYS) do
              if redis.call('get', key) == ARGV[1] then
                redis.call('pexpire', key, ARGV[2])
              else
                table.insert(lost, i)
              end
            end
            return lost""";
    private static final String RELEASE = """
            for _, key in ipairs(KEYS) do
              if redis.call('get', key) == ARGV[1] then
                redis.call('del', key)
              end
            end
            return 0""";

    private final Supplier<RedissonClient> redis;
    private final String prefix;
    private final String me;
    private final Duration ttl;

    Leases(Supplier<RedissonClient> redis, String prefix, String me, Duration ttl) {
        this.redis = redis;
        this.prefix = prefix;
        this.me = me;
        this.ttl = ttl;
    }

    private RedissonClient client() {
        RedissonClient client = redis.get();
        if (client == null) {
            throw new IllegalStateException("Redis not connected");
        }
        return client;
    }

    String key(String documentId) {
        return prefix + "owner:" + documentId;
    }

    /** Takes the lease if nobody holds it; true if this instance holds it now (newly or already). */
    boolean acquire(String documentId) {
        var bucket = client().<String>getBucket(key(documentId), StringCodec.INSTANCE);
        if (bucket.setIfAbsent(me, ttl)) {
            return true;
        }
        return me.equals(bucket.get());
    }

    /** The instance holding the lease, or null if none does. */
    String holder(String documentId) {
        return client().<String>getBucket(key(documentId), StringCodec.INSTANCE).get();
    }

    /** Extends the leases still ours; returns the documents whose lease is no longer ours. */
    List<String> renew(List<String> documentIds) {
        if (documentIds.isEmpty()) {
            return List.of();
        }
        List<Long> lost = client().getScript(StringCodec.INSTANCE).eval(RScript.Mode.READ_WRITE, RENEW,
                RScript.ReturnType.MULTI, keys(documentIds), me, String.valueOf(ttl.toMillis()));
        List<String> out = new ArrayList<>();
        for (Long i : lost) {
            out.add(documentIds.get(i.intValue() - 1));
        }
        return out;
    }

    /** Deletes the leases that are still ours, so other instances take over without waiting for the TTL. */
    void release(List<String> documentIds) {
        if (!documentIds.isEmpty()) {
            client().getScript(StringCodec.INSTANCE).eval(RScript.Mode.READ_WRITE, RELEASE,
                    RScript.ReturnType.INTEGER, keys(documentIds), me);
        }
    }

    private List<Object> keys(List<String> documentIds) {
        List<Object> keys = new ArrayList<>(documentIds.size());
        documentIds.forEach(id -> keys.add(key(id)));
        return keys;
    }
}
