package dev.synckit.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.testing.TcpProxy;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Three real server processes ({@code java -jar target/synckit-server.jar}, the artifact {@code package}
 * built) on one PostgreSQL (behind a {@link TcpProxy} the test can cut) and one Redis (a {@link RedisNode}
 * the test can restart), six {@link LoadClient}s writing to two shared documents, two per instance; and the
 * helpers the process-level fault tests share. Server logs go to {@code target/<name>/}.
 */
final class FaultCluster implements AutoCloseable {
    static final List<String> DOCS = List.of("faults-doc-a", "faults-doc-b");
    static final int INSTANCES = 3;
    static final String HEALTH_KEY = "cluster-faults-health-key";
    static final int CLIENTS = 6;
    /** Pause between a client's writes; keeps the documents (and the run) small on two cores. */
    static final long WRITE_PACE_MS = 40;
    static final Duration REPLY_TIMEOUT = Duration.ofSeconds(5);
    static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    static final long MAX_THREAD_GROWTH = 40;
    static final long MAX_RSS_GROWTH_KB = 256 * 1024;

    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    static final List<Process> CHILDREN = new CopyOnWriteArrayList<>();

    static {
        // If the test JVM is stopped (failsafe timeout, Ctrl-C), take the child servers and Redis with it.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> CHILDREN.forEach(Process::destroyForcibly)));
    }

    final TestDatabase db;
    final TcpProxy pg;
    final RedisNode redis;
    /** The Redis key prefix every instance shares (channels, and the ownership leases {@code <prefix>owner:<doc>}). */
    final String prefix;
    final List<ServerProcess> instances = new ArrayList<>();
    final FaultRun run;

    private FaultCluster(TestDatabase db, TcpProxy pg, RedisNode redis, String prefix) {
        this.db = db;
        this.pg = pg;
        this.redis = redis;
        this.prefix = prefix;
        this.run = new FaultRun(db, instances);
    }

    /**
     * Starts the databases, the instances (each with {@code settings} on top of the common environment) and
     * the load, whose clients resend a write unanswered for {@code writeTimeout}; logs go to {@code target/<name>/}.
     */
    static FaultCluster start(String name, Map<String, String> settings, Duration writeTimeout) throws Exception {
        long started = System.nanoTime();
        Path base = Path.of(System.getProperty("basedir", ".")).toAbsolutePath();
        Path jar = base.resolve("target/synckit-server.jar");
        assertTrue(Files.isRegularFile(jar) && Files.isDirectory(base.resolve("target/libs")),
                jar + " (with target/libs) is missing: run mvn package first (failsafe runs after it)");
        Path logs = Files.createDirectories(base.resolve("target").resolve(name));
        TestDatabase db = TestDatabase.create();
        URI pgAddress = db.address();
        TcpProxy pg = null;
        RedisNode redis = null;
        FaultCluster cluster = null;
        try {
            pg = new TcpProxy(pgAddress.getHost(), pgAddress.getPort());
            redis = RedisNode.create(logs);
            cluster = new FaultCluster(db, pg, redis, TestRedis.freshPrefix());
            for (int i = 0; i < INSTANCES; i++) {
                Map<String, String> env = new LinkedHashMap<>();
                env.put("HOST", "127.0.0.1");
                env.put("DATABASE_URL", db.urlVia(pg.port()));
                env.put("REDIS_URL", redis.url());
                env.put("REDIS_CHANNEL_PREFIX", cluster.prefix);
                env.put("SYNCKIT_AUTH_REQUIRED", "false");
                env.put("SYNCKIT_AUTH_APIKEYS", HEALTH_KEY); // /health lists documents only to an admin
                env.put("SYNCKIT_MAX_MESSAGES_PER_MINUTE", "1000000");
                env.put("SYNCKIT_STORAGE_CONNECT_dash_TIMEOUT_dash_MS", "1000");
                env.put("SYNCKIT_REDIS_TIMEOUT_dash_MS", "1000");
                env.putAll(settings);
                cluster.instances.add(new ServerProcess("node" + i, freePort(), env, jar, logs));
            }
            log("starting %d instances (redis: %s, postgres via proxy :%d)", INSTANCES, redis.describe(), pg.port());
            cluster.instances.forEach(ServerProcess::start);
            for (ServerProcess in : cluster.instances) {
                in.awaitReady();
            }
            log("instances ready after %d ms", ms(started));
            for (int i = 0; i < CLIENTS; i++) {
                cluster.run.clients.add(new LoadClient("c" + i, i % INSTANCES, cluster.instances, writeTimeout));
            }
            for (LoadClient c : cluster.run.clients) {
                c.connect();
            }
            cluster.run.clients.forEach(LoadClient::startLoad);
            return cluster;
        } catch (Exception | Error e) {
            if (cluster != null) {
                cluster.close();
            } else {
                if (redis != null) {
                    redis.close();
                }
                if (pg != null) {
                    pg.close();
                }
                db.close();
            }
            throw e;
        }
    }

    @Override
    public void close() throws Exception {
        try {
            run.close();
            instances.forEach(ServerProcess::destroy);
        } finally {
            try (TestDatabase d = db; TcpProxy p = pg; RedisNode r = redis) {
                // closed in reverse order
            }
        }
    }

    /**
     * The live instance holding the document's ownership lease (Redis key {@code <prefix>owner:<doc>}, whose
     * value is the holder's {@code /health} instance id), or null if no live instance holds it.
     */
    ServerProcess owner(String doc) throws IOException {
        String holder = leaseHolder(doc);
        for (ServerProcess in : instances) {
            if (holder != null && in.alive() && holder.equals(in.instanceId())) {
                return in;
            }
        }
        return null;
    }

    /** The instance id in the document's lease key, or null if the key does not exist. */
    String leaseHolder(String doc) throws IOException {
        URI address = URI.create(redis.url());
        byte[] key = (prefix + "owner:" + doc).getBytes(StandardCharsets.UTF_8);
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(address.getHost(), address.getPort()), 1000);
            s.setSoTimeout(2000);
            OutputStream out = s.getOutputStream();
            out.write(("*2\r\n$3\r\nGET\r\n$" + key.length + "\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(key);
            out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            DataInputStream in = new DataInputStream(s.getInputStream());
            String header = readLine(in);
            if (!header.startsWith("$")) {
                throw new IOException("unexpected Redis reply to GET: " + header);
            }
            int length = Integer.parseInt(header.substring(1));
            if (length < 0) {
                return null;
            }
            byte[] value = in.readNBytes(length);
            return new String(value, StandardCharsets.UTF_8);
        }
    }

    private static String readLine(DataInputStream in) throws IOException {
        StringBuilder line = new StringBuilder();
        int b;
        while ((b = in.read()) != '\n') {
            if (b < 0) {
                throw new IOException("Redis closed the connection");
            }
            if (b != '\r') {
                line.append((char) b);
            }
        }
        return line.toString();
    }

    /** Waits until some live instance owns the document (writes to it are running, so one takes it). */
    ServerProcess awaitOwner(String doc, Duration timeout) throws Exception {
        ServerProcess[] found = {null};
        eventually(timeout, () -> {
            try {
                found[0] = owner(doc);
            } catch (IOException e) {
                found[0] = null;
            }
            return found[0] != null;
        }, () -> "no live instance took the lease of " + doc + " within " + timeout);
        return found[0];
    }

    static Path onPath(String executable) {
        String path = System.getenv("PATH");
        if (path == null) {
            return null;
        }
        for (String dir : path.split(java.io.File.pathSeparator)) {
            Path p = Path.of(dir, executable);
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        return null;
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    static void eventually(Duration timeout, Supplier<Boolean> condition, Supplier<String> failure)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.get()) {
            if (System.nanoTime() > deadline) {
                fail(failure.get());
            }
            Thread.sleep(100);
        }
    }

    static String describeDiff(Map<String, JsonNode> actual, Map<String, JsonNode> expected) {
        List<String> missing = new ArrayList<>();
        List<String> extra = new ArrayList<>();
        List<String> different = new ArrayList<>();
        expected.forEach((k, v) -> {
            if (!actual.containsKey(k)) {
                missing.add(k);
            } else if (!actual.get(k).equals(v)) {
                different.add(k + "=" + actual.get(k) + " (stored " + v + ")");
            }
        });
        actual.keySet().stream().filter(k -> !expected.containsKey(k)).forEach(extra::add);
        return actual.size() + " fields vs " + expected.size() + " stored; missing " + head(missing) + ", extra "
                + head(extra) + ", different " + head(different);
    }

    static String head(List<String> l) {
        return l.size() <= 10 ? l.toString() : l.subList(0, 10) + "… (" + l.size() + ")";
    }

    static String percentiles(List<Long> sorted) {
        if (sorted.isEmpty()) {
            return "-";
        }
        return sorted.get(sorted.size() / 2) + "/" + sorted.get(Math.min(sorted.size() - 1, sorted.size() * 99 / 100))
                + "/" + sorted.get(sorted.size() - 1);
    }

    static String sizes(Map<String, Map<String, JsonNode>> stored) {
        Map<String, Integer> out = new TreeMap<>();
        stored.forEach((d, f) -> out.put(d, f.size()));
        return out.toString();
    }

    static long ms(long sinceNanos) {
        return (System.nanoTime() - sinceNanos) / 1_000_000;
    }

    static void log(String format, Object... args) {
        System.out.printf("[faults %tT.%<tL] %s%n", System.currentTimeMillis(), String.format(format, args));
        System.out.flush();
    }
}
