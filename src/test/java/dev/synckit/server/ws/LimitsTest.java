package dev.synckit.server.ws;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.RawWebSocket;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

import static dev.synckit.server.testing.Await.waitFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** The server's limits (PROTOCOL.md §2.4, §7, §8): each one is enforced without hurting other clients. */
class LimitsTest {
    private static String doc(String name) {
        return name + "-" + System.nanoTime();
    }


    private static void waitForConnections(TestServer s, int n) {
        waitFor(n + " live connections (now " + s.app().gateway().connectionCount() + ")", Duration.ofSeconds(5),
                () -> s.app().gateway().connectionCount() == n);
    }

    private static void pingPong(WsClient c) {
        c.send(MessageType.PING, Json.object());
        c.await("pong");
    }

    @Test
    void perIpCapRefusesTheThirdConnectionUntilOneCloses() {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-connections-per-ip", "2"))) {
            waitForConnections(s, 0); // the harness's warm-up handshake is gone
            try (WsClient a = WsClient.binary(s.wsUri()); WsClient b = WsClient.binary(s.wsUri())) {
                pingPong(a);
                pingPong(b);
                try (WsClient c = WsClient.binary(s.wsUri())) {
                    WsClient.Closed closed = c.awaitClose();
                    assertEquals(1008, closed.code());
                    assertEquals("Too many connections from your IP", closed.reason());
                }
                assertEquals(2, s.app().gateway().connectionCount());
                a.close();
                waitForConnections(s, 1);
                try (WsClient d = WsClient.binary(s.wsUri())) {
                    pingPong(d);
                    assertFalse(d.isClosed());
                }
                pingPong(b);
            }
            waitForConnections(s, 0);
            BadInputTest.assertStillServes(s, null); // two fresh connections fit again
        }
    }

    /**
     * Through our proxy (the test's loopback peer is a trusted proxy by default) every connection carries
     * a different address the client wrote itself, left of the one the proxy appended: they all count
     * against the proxy-appended address, so the third is refused. An honest second client still gets in.
     */
    @Test
    void spoofedForwardedForBehindOurProxyDoesNotBypassThePerIpCap() throws IOException {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-connections-per-ip", "2",
                "synckit.limits.trust-forwarded-for", "true"))) {
            waitForConnections(s, 0);
            try (Socket a = RawWebSocket.openWithHeaders(s.port(), 5000, "X-Forwarded-For: 1.1.1.1, 198.51.100.7");
                 Socket b = RawWebSocket.openWithHeaders(s.port(), 5000, "X-Forwarded-For: 1.1.1.2, 198.51.100.7")) {
                // Connections are admitted in onOpen, after the upgrade answer: without this wait the third
                // could be admitted before the second and the second refused (a CI failure of this test).
                waitForConnections(s, 2);
                try (Socket c = RawWebSocket.openWithHeaders(s.port(), 5000, "X-Forwarded-For: 1.1.1.3",
                        "X-Forwarded-For: 198.51.100.7")) {
                    assertEquals(1008, RawWebSocket.awaitCloseCode(c), "the third connection of 198.51.100.7");
                }
                try (Socket other = RawWebSocket.openWithHeaders(s.port(), 5000, "X-Forwarded-For: 1.1.1.1, 198.51.100.8")) {
                    waitForConnections(s, 3);
                }
            }
            waitForConnections(s, 0);
        }
    }

    /** A peer that is not one of our proxies is counted by its socket address, whatever headers it sends. */
    @Test
    void forwardedHeadersFromAPeerOutsideTheTrustedProxiesAreIgnored() throws IOException {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-connections-per-ip", "2",
                "synckit.limits.trust-forwarded-for", "true", "synckit.limits.trusted-proxies", "10.0.0.0/8"))) {
            waitForConnections(s, 0);
            try (Socket a = RawWebSocket.openWithHeaders(s.port(), 5000, "X-Forwarded-For: 1.1.1.1");
                 Socket b = RawWebSocket.openWithHeaders(s.port(), 5000, "X-Forwarded-For: 1.1.1.2")) {
                // Admission happens in onOpen, after the upgrade answer: wait for both, or the third could be
                // admitted first and the second refused (a CI failure of this test: c stayed open).
                waitForConnections(s, 2);
                try (Socket c = RawWebSocket.openWithHeaders(s.port(), 5000, "X-Real-IP: 1.1.1.3")) {
                    assertEquals(1008, RawWebSocket.awaitCloseCode(c), "the third connection from 127.0.0.1");
                }
                assertEquals(2, s.app().gateway().connectionCount());
            }
            waitForConnections(s, 0);
        }
    }

    @Test
    void globalCapRefusesWithServerAtMaximumCapacity() {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-connections", "2",
                "synckit.limits.max-connections-per-ip", "10"))) {
            waitForConnections(s, 0);
            try (WsClient a = WsClient.binary(s.wsUri()); WsClient b = WsClient.json(s.wsUri())) {
                pingPong(a);
                pingPong(b);
                try (WsClient c = WsClient.binary(s.wsUri())) {
                    WsClient.Closed closed = c.awaitClose();
                    assertEquals(1008, closed.code());
                    assertEquals("Server at maximum capacity", closed.reason());
                }
                assertEquals(2, s.app().gateway().connectionCount());
                b.close();
                waitForConnections(s, 1);
                try (WsClient d = WsClient.binary(s.wsUri())) {
                    pingPong(d);
                }
                pingPong(a);
            }
        }
    }

    @Test
    void rateLimitAnswersWithAnErrorAndKeepsTheSocketOpen() {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-messages-per-minute", "5"));
             WsClient c = WsClient.binary(s.wsUri())) {
            for (int i = 0; i < 5; i++) {
                pingPong(c);
            }
            for (int i = 0; i < 3; i++) {
                c.send(MessageType.PING, Json.object());
                WsClient.Received e = c.await("error");
                assertEquals("Too many messages. Please slow down.", e.text("error"));
                assertEquals("RATE_LIMIT_EXCEEDED", e.payload().path("details").path("code").asText());
            }
            String id = doc("limited");
            ObjectNode delta = Json.object().put("documentId", id).put("messageId", "m1");
            delta.putObject("delta").put("a", 1);
            c.send(MessageType.DELTA, delta);
            assertEquals("Too many messages. Please slow down.", c.await("error").text("error"));
            c.expectNone("pong", Duration.ofMillis(200));
            c.expectNone("ack", Duration.ZERO);
            assertFalse(c.isClosed(), "rate-limited socket must stay open");
            assertEquals(1, s.app().gateway().connectionCount());
            // The limit is per connection: a fresh one is served normally.
            BadInputTest.assertStillServes(s, null);
        }
    }

    @Test
    void fragmentedMessageOverTheCapGetsAnErrorAndTheConnectionKeepsWorking() {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-message-bytes", "4096"));
             WsClient c = WsClient.binary(s.wsUri())) {
            String id = doc("big");
            ObjectNode delta = Json.object().put("documentId", id).put("messageId", "big-1");
            delta.putObject("delta").put("blob", "x".repeat(10_000));
            byte[] whole = WsClient.encode(MessageType.DELTA, delta);
            assertTrue(whole.length > 10_000);
            int third = whole.length / 3 + 1;
            c.sendBinaryFragments(Arrays.copyOfRange(whole, 0, third), Arrays.copyOfRange(whole, third, 2 * third),
                    Arrays.copyOfRange(whole, 2 * third, whole.length));
            WsClient.Received e = c.await("error");
            assertTrue(e.text("error").startsWith("Message too large"), e.text("error"));
            assertTrue(e.text("error").contains("max 4096"), e.text("error"));
            assertEquals("INVALID_MESSAGE", e.payload().path("details").path("code").asText());
            c.expectNone("ack", Duration.ofMillis(200));
            pingPong(c);

            // The same in JSON text fragments.
            try (WsClient j = WsClient.json(s.wsUri())) {
                String text = "{\"type\":\"delta\",\"documentId\":\"" + id + "\",\"delta\":{\"b\":\"" + "y".repeat(9000) + "\"}}";
                j.sendTextFragments(text.substring(0, 3000), text.substring(3000, 6000), text.substring(6000));
                assertTrue(j.await("error").text("error").startsWith("Message too large"));
                pingPong(j);
            }

            // Under the cap, fragments still work on the same connection.
            ObjectNode small = Json.object().put("documentId", id).put("messageId", "small-1");
            small.putObject("delta").put("blob", "ok");
            byte[] ok = WsClient.encode(MessageType.DELTA, small);
            c.sendBinaryFragments(Arrays.copyOfRange(ok, 0, 10), Arrays.copyOfRange(ok, 10, ok.length));
            assertEquals("small-1", c.await("ack").text("messageId"));
            BadInputTest.assertStillServes(s, c);
        }
    }

    @Test
    void singleFrameOverTheCapClosesWith1009AndOthersAreServed() {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-message-bytes", "4096"));
             WsClient bystander = WsClient.binary(s.wsUri());
             WsClient c = WsClient.binary(s.wsUri())) {
            ObjectNode delta = Json.object().put("documentId", doc("huge")).put("messageId", "huge-1");
            delta.putObject("delta").put("blob", "x".repeat(6000));
            c.send(MessageType.DELTA, delta);
            WsClient.Closed closed = c.awaitClose();
            assertEquals(1009, closed.code(), "close: " + closed);
            waitForConnections(s, 1);
            pingPong(bystander);
            BadInputTest.assertStillServes(s, bystander);
        }
    }

    /** Encodes a valid delta_batch in the binary framing and sends it as shuffled base64 chunks. */
    @Test
    void chunkedDeltaBatchIsReassembledInAnyOrder() {
        try (TestServer s = TestServer.start();
             WsClient writer = WsClient.binary(s.wsUri());
             WsClient reader = WsClient.json(s.wsUri())) {
            String id = doc("chunked");
            reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            reader.await("sync_response");
            ObjectNode batch = Json.object().put("documentId", id).put("messageId", "chunked-1");
            var deltas = batch.putArray("deltas");
            for (int i = 0; i < 3; i++) {
                ObjectNode op = deltas.addObject().put("type", "set").put("documentId", id).put("field", "f" + i)
                        .put("value", "v" + i + "-" + "z".repeat(200)).put("clientId", "cl").put("timestamp", 1L);
                op.putObject("clock").put("cl", i + 1);
            }
            byte[] whole = WsClient.encode(MessageType.DELTA_BATCH, batch);
            int size = whole.length / 3 + 1;
            List<ObjectNode> chunks = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                byte[] part = Arrays.copyOfRange(whole, i * size, Math.min(whole.length, (i + 1) * size));
                chunks.add(Json.object().put("chunkId", "ch-1").put("totalChunks", 3).put("chunkIndex", i)
                        .put("data", Base64.getEncoder().encodeToString(part)));
            }
            for (int i : new int[] {2, 0, 1}) {
                writer.send(MessageType.DELTA_BATCH_CHUNK, chunks.get(i));
                if (i != 1) {
                    writer.expectNone("ack", Duration.ofMillis(50)); // incomplete: nothing applied yet
                }
            }
            assertEquals("chunked-1", writer.await("ack").text("messageId"));
            for (WsClient c : new WsClient[] {writer, reader}) {
                for (int i = 0; i < 3; i++) {
                    String f = "f" + i;
                    String value = c.awaitField(f).path("value").asText();
                    assertTrue(value.startsWith("v" + i + "-"), value);
                }
            }

            // Out-of-range index: rejected, nothing else disturbed.
            writer.send(MessageType.DELTA_BATCH_CHUNK, Json.object().put("chunkId", "ch-2").put("totalChunks", 3)
                    .put("chunkIndex", 3).put("data", chunks.get(0).get("data").asText()));
            assertTrue(writer.await("error").text("error").startsWith("Invalid message format: chunkIndex"));
            // A chunk set whose reassembled bytes are not a message: error, connection fine.
            writer.send(MessageType.DELTA_BATCH_CHUNK, Json.object().put("chunkId", "ch-3").put("totalChunks", 1)
                    .put("chunkIndex", 0).put("data", Base64.getEncoder().encodeToString(new byte[] {1, 2, 3})));
            assertTrue(writer.await("error").text("error").startsWith("Invalid message format: frame of 3 bytes"));
            BadInputTest.assertStillServes(s, writer);
        }
    }

    @Test
    void heartbeatDropsASilentPeerButKeepsALiveOne() {
        try (TestServer s = TestServer.start(Map.of("synckit.websocket.heartbeat-interval-ms", "300"))) {
            waitForConnections(s, 0);
            try (WsClient live = WsClient.binary(s.wsUri()); WsClient silent = WsClient.silent(s.wsUri())) {
                waitForConnections(s, 2);
                waitForConnections(s, 1); // the silent one misses a heartbeat round
                Thread.sleep(1000); // several more heartbeat rounds: the live one answers them
                assertEquals(1, s.app().gateway().connectionCount());
                assertFalse(live.isClosed());
                pingPong(live);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }

    @Test
    void slowConsumerIsDisconnectedWhileTheWriterKeepsGettingAcks() {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-message-bytes", "65536",
                "synckit.limits.outbound-queue-bytes", "65536",
                "synckit.limits.max-document-bytes", String.valueOf(64 << 20), // it writes up to 32 MB of fields
                "synckit.limits.max-messages-per-minute", "100000"))) {
            waitForConnections(s, 0);
            String id = doc("slow");
            try (WsClient writer = WsClient.binary(s.wsUri()); WsClient slow = WsClient.silent(s.wsUri())) {
                slow.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                waitFor("slow subscribed", Duration.ofSeconds(5),
                        () -> s.app().documents().subscribers(id).size() == 1);
                waitForConnections(s, 2);
                String value = "v".repeat(16 * 1024);
                int writes = 0;
                // Bounded: 2000 × 16 KB = 32 MB, far past any socket buffering, but we stop early.
                while (s.app().gateway().connectionCount() == 2 && writes < 2000) {
                    ObjectNode delta = Json.object().put("documentId", id).put("messageId", "w" + writes);
                    delta.putObject("delta").put("f" + writes, value);
                    writer.send(MessageType.DELTA, delta);
                    String want = "w" + writes;
                    writer.await("ack", r -> want.equals(r.text("messageId")));
                    writes++;
                }
                // The slow client is closed (close frame, then a forced shutdown after a grace period).
                waitFor("the slow consumer to be dropped after " + writes + " writes", Duration.ofSeconds(15),
                        () -> s.app().gateway().connectionCount() == 1);
                assertEquals(1, s.app().documents().subscribers(id).size(), "the slow peer is unsubscribed");
                // The writer is unaffected.
                ObjectNode delta = Json.object().put("documentId", id).put("messageId", "after");
                delta.putObject("delta").put("last", "yes");
                writer.send(MessageType.DELTA, delta);
                assertEquals("after", writer.await("ack", r -> "after".equals(r.text("messageId"))).text("messageId"));
                pingPong(writer);
            }
        }
    }

    /** Opens a WebSocket by hand (no client library) and returns the socket after the 101 response. */
    private static Socket rawWebSocket(TestServer s) throws IOException {
        return dev.synckit.server.testing.RawWebSocket.open(s.port(), true, 10_000);
    }

    @Test
    void peerDroppingTcpWithoutCloseFrameIsReleasedPromptly() throws IOException {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-connections-per-ip", "1"))) {
            waitForConnections(s, 0);
            for (int i = 0; i < 3; i++) {
                Socket raw = rawWebSocket(s);
                waitForConnections(s, 1);
                raw.close(); // no close frame: a crashed client or a lost network
                // The heartbeat (30 s here) must not be what frees the slot.
                waitForConnections(s, 0);
            }
            try (WsClient c = WsClient.binary(s.wsUri())) {
                pingPong(c);
            }
        }
    }

    @Test
    void heartbeatReallyClosesTheSocketOfADeadPeer() throws IOException {
        try (TestServer s = TestServer.start(Map.of("synckit.websocket.heartbeat-interval-ms", "300"))) {
            waitForConnections(s, 0);
            try (Socket raw = rawWebSocket(s)) { // reads, but never answers pings
                waitForConnections(s, 1);
                InputStream in = raw.getInputStream();
                long start = System.nanoTime();
                byte[] buf = new byte[256];
                try {
                    while (in.read(buf) >= 0) {
                        // ping frames, maybe a close frame; the server must then drop the TCP connection
                    }
                } catch (SocketTimeoutException e) {
                    fail("the server left the dead peer's TCP connection open");
                } catch (IOException e) {
                    // connection reset also counts as closed
                }
                assertTrue(System.nanoTime() - start < Duration.ofSeconds(8).toNanos());
                waitForConnections(s, 0);
            }
        }
    }

    @Test
    void applicationPingWorksBeforeAuthWhenAuthIsRequired() {
        try (TestServer s = TestServer.start(Map.of("synckit.auth.required", "true",
                "synckit.auth.jwt-secret", "0123456789abcdef0123456789abcdef01234567"));
             WsClient c = WsClient.binary(s.wsUri())) {
            pingPong(c);
            c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc("secret")));
            assertEquals("Not authenticated", c.await("error").text("error"));
            c.expectNone("sync_response", Duration.ofMillis(200));
            // Bad input before auth is answered like after it.
            c.sendBinary(new byte[] {(byte) 0x99, 1, 2});
            assertTrue(c.await("error").text("error").startsWith("Invalid message format"));
            pingPong(c);
            assertFalse(c.isClosed());
        }
    }
}
