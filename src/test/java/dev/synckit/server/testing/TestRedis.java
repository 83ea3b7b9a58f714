package dev.synckit.server.testing;

import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.UUID;

/**
 * A Redis for the multi-instance tests: Testcontainers when a Docker engine is available, otherwise
 * {@code SYNCKIT_TEST_REDIS_URL} (default the local service). Tests isolate themselves by channel prefix.
 * If neither is reachable the test fails and says how to provide one.
 */
public final class TestRedis {
    private static volatile String url;

    private TestRedis() {
    }

    public static synchronized String url() {
        if (url != null) {
            return url;
        }
        String configured = System.getenv("SYNCKIT_TEST_REDIS_URL");
        String candidate;
        if (configured == null && DockerClientFactory.instance().isDockerAvailable()) {
            GenericContainer<?> redis = new GenericContainer<>("redis:7-alpine").withExposedPorts(6379);
            redis.start();
            Runtime.getRuntime().addShutdownHook(new Thread(redis::stop));
            candidate = "redis://" + redis.getHost() + ":" + redis.getMappedPort(6379);
        } else {
            candidate = configured != null ? configured : "redis://127.0.0.1:6379";
        }
        URI uri = URI.create(candidate);
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(uri.getHost(), uri.getPort()), 2000);
            OutputStream out = s.getOutputStream();
            out.write("PING\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            byte[] reply = new byte[7];
            int n = in.read(reply);
            if (n <= 0 || reply[0] != '+') {
                throw new IOException("unexpected reply to PING");
            }
        } catch (IOException e) {
            throw new IllegalStateException("Redis for the tests is not reachable at " + candidate + ": " + e.getMessage()
                    + ". Start it (redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no),"
                    + " set SYNCKIT_TEST_REDIS_URL, or make a Docker engine available for Testcontainers.", e);
        }
        url = candidate;
        return candidate;
    }

    public static URI address() {
        return URI.create(url());
    }

    /** A channel prefix no other test uses. */
    public static String freshPrefix() {
        return "synckit-test-" + UUID.randomUUID().toString().substring(0, 8) + ":";
    }

    /** The settings of one instance of a cluster on {@code db} and this Redis, under {@code prefix}. */
    public static java.util.Map<String, String> node(TestDatabase db, String prefix) {
        return java.util.Map.of("synckit.storage.url", db.url(), "synckit.redis.url", url(),
                "synckit.redis.channel-prefix", prefix, "synckit.redis.timeout-ms", "1000");
    }
}
