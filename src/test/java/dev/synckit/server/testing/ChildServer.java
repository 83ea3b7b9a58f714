package dev.synckit.server.testing;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The server as a separate process (this test JVM's classpath, {@code dev.synckit.server.Main}), so tests
 * can SIGKILL or SIGTERM it. Configured through environment variables, on a free port, in an empty
 * working directory (no app.yaml).
 */
public final class ChildServer implements AutoCloseable {
    private final Process process;
    private final int port;
    private final StringBuilder log = new StringBuilder();

    private ChildServer(Map<String, String> env) throws IOException, InterruptedException {
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "dev.synckit.server.Main")
                .directory(Files.createTempDirectory("synckit-child").toFile())
                .redirectErrorStream(true);
        pb.environment().put("PORT", String.valueOf(port));
        pb.environment().put("HOST", "127.0.0.1");
        pb.environment().put("SYNCKIT_AUTH_REQUIRED", "false");
        pb.environment().putAll(env);
        process = pb.start();
        CountDownLatch ready = new CountDownLatch(1);
        Thread.ofVirtual().start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream()))) {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (log) {
                        log.append(line).append('\n');
                    }
                    if (line.contains("server ready")) {
                        ready.countDown();
                    }
                }
            } catch (IOException ignored) {
                // the process is gone
            }
        });
        if (!ready.await(60, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new IllegalStateException("child server did not start:\n" + log());
        }
    }

    /** Starts a child server with these extra environment variables and waits until it is ready. */
    public static ChildServer start(Map<String, String> env) throws IOException, InterruptedException {
        return new ChildServer(env);
    }

    public URI wsUri() {
        return URI.create("ws://127.0.0.1:" + port + "/ws");
    }

    public URI httpUri(String path) {
        return URI.create("http://127.0.0.1:" + port + path);
    }

    public Process process() {
        return process;
    }

    public String log() {
        synchronized (log) {
            return log.toString();
        }
    }

    @Override
    public void close() {
        process.destroyForcibly();
    }
}
