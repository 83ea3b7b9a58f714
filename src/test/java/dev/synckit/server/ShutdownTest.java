package dev.synckit.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** SIGTERM: not ready, in-flight writes acknowledged, clients closed with 1012, exit within the grace. */
class ShutdownTest {

    @Test
    void sigtermDrainsAndClosesClientsWith1012() throws Exception {
        String doc = "shutdown-doc";
        try (TestDatabase db = TestDatabase.create()) {
            int port;
            try (ServerSocket s = new ServerSocket(0)) {
                port = s.getLocalPort();
            }
            ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-cp", System.getProperty("java.class.path"), "dev.synckit.server.Main")
                    .directory(Files.createTempDirectory("synckit-shutdown").toFile())
                    .redirectErrorStream(true);
            pb.environment().put("PORT", String.valueOf(port));
            pb.environment().put("HOST", "127.0.0.1");
            pb.environment().put("SYNCKIT_AUTH_REQUIRED", "false");
            pb.environment().put("DATABASE_URL", db.url());
            pb.environment().put("SYNCKIT_WEBSOCKET_SHUTDOWN_dash_GRACE_dash_MS", "3000");
            Process process = pb.start();
            CountDownLatch ready = new CountDownLatch(1);
            StringBuilder log = new StringBuilder();
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
                } catch (java.io.IOException ignored) {
                    // gone
                }
            });
            List<Integer> acked = new ArrayList<>();
            try {
                assertTrue(ready.await(30, TimeUnit.SECONDS), () -> "child did not start:\n" + log);
                try (WsClient c = WsClient.binary(URI.create("ws://127.0.0.1:" + port + "/ws"))) {
                    for (int i = 0; i < 100; i++) {
                        ObjectNode d = Json.object().put("id", "w" + i).put("documentId", doc);
                        d.putObject("delta").put("f" + i, i);
                        c.send(MessageType.DELTA, d);
                    }
                    c.await("ack", r -> "w49".equals(r.text("messageId")));
                    acked.add(49);
                    long sigterm = System.nanoTime();
                    process.destroy(); // SIGTERM while the later writes are still in flight
                    WsClient.Closed closed = c.awaitClose();
                    assertEquals(1012, closed.code(), "close code on shutdown: " + closed);
                    for (WsClient.Received r : c.pending()) {
                        if (r.type().equals("ack") && !r.text("messageId").equals("w49")) {
                            acked.add(Integer.parseInt(r.text("messageId").substring(1)));
                        }
                    }
                    assertTrue(process.waitFor(3000 + 5000, TimeUnit.MILLISECONDS), "did not exit within the grace");
                    long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - sigterm);
                    System.out.println("shutdown: " + acked.size() + " writes acked before close; exited after " + ms + " ms");
                }
            } finally {
                process.destroyForcibly();
                synchronized (log) {
                    System.out.println("child log:\n" + log.substring(Math.max(0, log.length() - 6000)));
                }
            }
            try (TestServer after = TestServer.start(Map.of("synckit.storage.url", db.url()));
                 WsClient c = WsClient.binary(after.wsUri())) {
                c.send(MessageType.SYNC_REQUEST, Json.object().put("id", "s").put("documentId", doc));
                JsonNode state = c.await("sync_response").payload().get("state");
                for (int i : acked) {
                    assertEquals(i, state.path("f" + i).asInt(-1), "acknowledged write f" + i + " lost in shutdown");
                }
            }
        }
    }

    @Test
    void readinessIsDownWhileStartingAndDraining() throws Exception {
        try (TestServer server = TestServer.start(); HttpClient http = HttpClient.newHttpClient()) {
            HttpRequest ready = HttpRequest.newBuilder(server.httpUri("/health/ready")).build();
            assertEquals(200, http.send(ready, HttpResponse.BodyHandlers.ofString()).statusCode());
            server.app().draining();
            HttpResponse<String> draining = http.send(ready, HttpResponse.BodyHandlers.ofString());
            assertEquals(503, draining.statusCode());
            assertTrue(draining.body().contains("draining"), draining.body());
            assertEquals(200, http.send(HttpRequest.newBuilder(server.httpUri("/health/live")).build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode());
        }
    }
}
