package dev.synckit.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.ChildServer;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** SIGTERM: not ready, in-flight writes acknowledged, clients closed with 1012, exit within the grace. */
class ShutdownTest {

    @Test
    void sigtermDrainsAndClosesClientsWith1012() throws Exception {
        String doc = "shutdown-doc";
        try (TestDatabase db = TestDatabase.create()) {
            ChildServer child = ChildServer.start(Map.of("DATABASE_URL", db.url(),
                    "SYNCKIT_WEBSOCKET_SHUTDOWN_dash_GRACE_dash_MS", "3000"));
            Process process = child.process();
            List<Integer> acked = new ArrayList<>();
            try {
                try (WsClient c = WsClient.binary(child.wsUri())) {
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
                child.close();
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
