package dev.synckit.server;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.protocol.Json;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.synckit.server.FaultCluster.*;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** One server process: {@code java -jar target/synckit-server.jar} in an empty working directory. */
final class ServerProcess {
    record Stats(long rssKb, long threads) {}

    final String name;
    final int port;
    final Map<String, String> env;
    final Path jar;
    final Path logs;
    volatile Process process;
    volatile CountDownLatch ready;
    /** SIGSTOPped: the process exists but answers nothing, so clients must not pick it. */
    volatile boolean suspended;
    final ArrayDeque<String> tail = new ArrayDeque<>();
    int starts;

    ServerProcess(String name, int port, Map<String, String> env, Path jar, Path logs) {
        this.name = name;
        this.port = port;
        this.env = env;
        this.jar = jar;
        this.logs = logs;
    }

    void start() {
        try {
            Path work = Files.createTempDirectory("synckit-it-" + name);
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            // A bounded heap makes a leak fail fast; C1 only and the serial collector keep three JVMs
            // starting and running reasonably on two cores.
            ProcessBuilder pb = new ProcessBuilder(java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                    "-jar", jar.toString())
                    .directory(work.toFile())
                    .redirectErrorStream(true);
            pb.environment().keySet().removeIf(k -> k.startsWith("SYNCKIT_") || k.startsWith("SERVER_")
                    || k.startsWith("ConnectionStrings__") || Set.of("PORT", "HOST", "DATABASE_URL", "REDIS_URL",
                    "REDIS_CHANNEL_PREFIX", "JWT_SECRET", "JAVA_TOOL_OPTIONS").contains(k));
            pb.environment().putAll(env);
            pb.environment().put("PORT", String.valueOf(port));
            starts++;
            Path logFile = logs.resolve(name + "-" + starts + ".log");
            CountDownLatch latch = new CountDownLatch(1);
            ready = latch;
            synchronized (tail) {
                tail.clear();
            }
            Process p = pb.start();
            CHILDREN.add(p);
            process = p;
            Thread.ofVirtual().name("log-" + name).start(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
                     PrintWriter out = new PrintWriter(Files.newBufferedWriter(logFile))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        out.println(line);
                        out.flush();
                        synchronized (tail) {
                            tail.addLast(line);
                            if (tail.size() > 60) {
                                tail.removeFirst();
                            }
                        }
                        if (line.contains("server ready")) {
                            latch.countDown();
                        }
                    }
                } catch (IOException ignored) {
                    // process gone
                }
            });
        } catch (IOException e) {
            throw new IllegalStateException("cannot start " + name, e);
        }
    }

    void awaitReady() throws InterruptedException {
        long t0 = System.nanoTime();
        if (!ready.await(READY_TIMEOUT.toSeconds(), TimeUnit.SECONDS) || !process.isAlive()) {
            fail(name + " did not become ready (alive " + process.isAlive() + "):\n" + tail());
        }
        log("%s ready on port %d (pid %d) after %d ms", name, port, pid(), ms(t0));
    }

    String tail() {
        synchronized (tail) {
            return String.join("\n", tail);
        }
    }

    long pid() {
        return process.pid();
    }

    boolean alive() {
        Process p = process;
        return p != null && p.isAlive() && ready.getCount() == 0 && !suspended;
    }

    /** SIGSTOP: the JVM freezes with whatever it was doing, sockets and transactions open. */
    void suspend() throws Exception {
        signal("STOP");
        suspended = true;
    }

    /** SIGCONT after {@link #suspend}. */
    void resume() throws Exception {
        signal("CONT");
        suspended = false;
    }

    private void signal(String name) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + name, String.valueOf(pid())).inheritIO().start();
        assertTrue(kill.waitFor(5, TimeUnit.SECONDS) && kill.exitValue() == 0, "kill -" + name + " " + pid() + " failed");
    }

    void kill() throws InterruptedException {
        process.destroyForcibly();
        assertTrue(process.waitFor(10, TimeUnit.SECONDS), name + " survived SIGKILL");
    }

    /** SIGTERM; returns the exit code. */
    int terminate() throws InterruptedException {
        long t0 = System.nanoTime();
        process.destroy();
        if (!process.waitFor(20, TimeUnit.SECONDS)) {
            fail(name + " did not stop within 20 s of SIGTERM:\n" + tail());
        }
        log("%s stopped %d ms after SIGTERM", name, ms(t0));
        return process.exitValue();
    }

    void destroy() {
        Process p = process;
        if (p != null) {
            p.destroyForcibly();
        }
    }

    /** RSS and OS thread count from /proc (what a leak would grow), or zeros where there is no /proc. */
    Stats stats() throws IOException {
        Path status = Path.of("/proc", String.valueOf(pid()), "status");
        if (!Files.exists(status)) {
            return new Stats(0, 0);
        }
        long rss = 0;
        long threads = 0;
        for (String line : Files.readAllLines(status)) {
            if (line.startsWith("VmRSS:")) {
                rss = Long.parseLong(line.replaceAll("\\D", ""));
            } else if (line.startsWith("Threads:")) {
                threads = Long.parseLong(line.replaceAll("\\D", ""));
            }
        }
        return new Stats(rss, threads);
    }

    /** The instance id this process shows in /health (a fresh one per start), or null if it does not answer. */
    String instanceId() {
        JsonNode h = health();
        return h == null ? null : h.path("cluster").path("instanceId").asText(null);
    }

    /** A counter or gauge from GET /metrics (Prometheus text), summed over its label sets; -1 if absent. */
    double metric(String name) throws IOException, InterruptedException {
        String text = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics"))
                .header("Accept", "text/plain").timeout(Duration.ofSeconds(3)).build(), HttpResponse.BodyHandlers.ofString()).body();
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(\\{[^}]*\\})? ([0-9.eE+-]+)$").matcher(text);
        double sum = -1;
        while (m.find()) {
            sum = Math.max(sum, 0) + Double.parseDouble(m.group(2));
        }
        return sum;
    }

    JsonNode health() {
        try {
            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/health"))
                    .header("X-API-Key", HEALTH_KEY).timeout(Duration.ofSeconds(3)).build(), HttpResponse.BodyHandlers.ofString());
            return Json.MAPPER.readTree(r.body());
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }
}
