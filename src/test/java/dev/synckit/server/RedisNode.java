package dev.synckit.server;

import dev.synckit.server.testing.TcpProxy;
import dev.synckit.server.testing.TestRedis;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static dev.synckit.server.FaultCluster.*;
import static org.junit.jupiter.api.Assertions.fail;

/** A Redis that the test can stop and start again on the same port. */
interface RedisNode extends AutoCloseable {
    String url();

    String describe();

    void stop() throws Exception;

    void start() throws Exception;

    @Override
    void close() throws Exception;

    /** Our own redis-server child when one is installed; otherwise a proxy in front of the test Redis. */
    static RedisNode create(Path logs) throws Exception {
        Path server = onPath("redis-server");
        if (server != null) {
            OwnRedis r = new OwnRedis(server, freePort(), logs);
            r.start();
            return r;
        }
        URI shared = TestRedis.address();
        return new ProxiedRedis(new TcpProxy(shared.getHost(), shared.getPort()));
    }

    final class OwnRedis implements RedisNode {
        final Path binary;
        final int port;
        final Path logs;
        Process process;
        int starts;

        OwnRedis(Path binary, int port, Path logs) {
            this.binary = binary;
            this.port = port;
            this.logs = logs;
        }

        @Override
        public String url() {
            return "redis://127.0.0.1:" + port;
        }

        @Override
        public String describe() {
            return "own redis-server on port " + port + " (restarted for real)";
        }

        @Override
        public void start() throws Exception {
            starts++;
            process = new ProcessBuilder(binary.toString(), "--port", String.valueOf(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no")
                    .redirectErrorStream(true)
                    .redirectOutput(logs.resolve("redis-" + starts + ".log").toFile())
                    .start();
            CHILDREN.add(process);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!ping()) {
                if (System.nanoTime() > deadline || !process.isAlive()) {
                    fail("redis-server did not start on port " + port);
                }
                Thread.sleep(50);
            }
        }

        private boolean ping() {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 500);
                s.setSoTimeout(500);
                OutputStream out = s.getOutputStream();
                out.write("PING\r\n".getBytes(StandardCharsets.US_ASCII));
                out.flush();
                InputStream in = s.getInputStream();
                return in.read() == '+';
            } catch (IOException e) {
                return false;
            }
        }

        @Override
        public void stop() throws Exception {
            process.destroy(); // SIGTERM: redis-server shuts down (nothing to save)
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        }

        @Override
        public void close() throws Exception {
            if (process != null && process.isAlive()) {
                process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        }
    }

    record ProxiedRedis(TcpProxy proxy) implements RedisNode {
        @Override
        public String url() {
            return "redis://127.0.0.1:" + proxy.port();
        }

        @Override
        public String describe() {
            return "shared test Redis behind a proxy on port " + proxy.port() + " (restart simulated by a cut)";
        }

        @Override
        public void stop() throws Exception {
            proxy.cut();
        }

        @Override
        public void start() throws Exception {
            proxy.restore();
        }

        @Override
        public void close() throws Exception {
            proxy.close();
        }
    }
}
