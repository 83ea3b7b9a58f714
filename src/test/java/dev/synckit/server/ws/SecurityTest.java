package dev.synckit.server.ws;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.Timeout;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.logging.SimpleFormatter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Confidentiality and integrity over a real server with auth required (PROTOCOL.md §7): a client never
 * receives data of a document it may not read — not in replies, broadcasts or presence — never changes a
 * document it may not write, forged or expired tokens are refused, and no secret reaches a log record or
 * a health/metrics body. Tokens are signed here with javax.crypto, independently of the server.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(60)
class SecurityTest {
    /** 40 characters. */
    static final String SECRET = "Zx9-security-test-jwt-secret-40-chars-QW";
    static final String API_KEY = "ak-Vb7-security-test-api-key-value";
    static final String DB_PASSWORD = "s3cretPw";
    static final Duration QUIET = Duration.ofMillis(400);

    private final List<String> logLines = new ArrayList<>();
    private final Handler capture = new Handler() {
        private final SimpleFormatter formatter = new SimpleFormatter();

        @Override
        public void publish(LogRecord record) {
            String line;
            try {
                line = formatter.format(record); // message with parameters, and the stack trace if any
            } catch (RuntimeException e) {
                line = String.valueOf(record.getMessage());
            }
            synchronized (logLines) {
                logLines.add(line + " " + record.getMessage());
            }
        }

        @Override
        public void flush() {
        }

        @Override
        public void close() {
        }
    };
    private Level previousLevel;
    private TestDatabase database;
    private TestServer server;

    @BeforeAll
    void start() {
        assertEquals(40, SECRET.length());
        capture.setLevel(Level.ALL);
        Logger.getLogger("").addHandler(capture);
        Logger ours = Logger.getLogger("dev.synckit");
        previousLevel = ours.getLevel();
        ours.setLevel(Level.ALL); // our own FINE records too
        database = TestDatabase.create();
        String url = database.url() + (database.url().contains("?") ? "&" : "?") + "password=" + DB_PASSWORD;
        server = TestServer.start(Map.of(
                "synckit.auth.required", "true",
                "synckit.auth.jwt-secret", SECRET,
                "synckit.auth.api-keys", API_KEY,
                "synckit.storage.url", url));
        assertTrue(server.settings().storage().postgres());
    }

    @AfterAll
    void stop() {
        try {
            if (server != null) {
                server.close();
            }
            if (database != null) {
                database.close();
            }
        } finally {
            Logger.getLogger("").removeHandler(capture);
            Logger.getLogger("dev.synckit").setLevel(previousLevel);
        }
    }

    // ---------------------------------------------------------------- tokens (independent of the server's Jwt)

    static String b64(byte[] bytes) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
    }

    static String b64(String s) {
        return b64(s.getBytes(StandardCharsets.UTF_8));
    }

    static byte[] hmac(String algorithm, String secret, String input) {
        try {
            Mac mac = Mac.getInstance(algorithm);
            mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), algorithm));
            return mac.doFinal(input.getBytes(StandardCharsets.US_ASCII));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    static String token(ObjectNode claims, String secret) {
        String input = b64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "." + b64(claims.toString());
        return input + "." + b64(hmac("HmacSHA256", secret, input));
    }

    static long now() {
        return System.currentTimeMillis() / 1000;
    }

    static ObjectNode claims(String userId, List<String> canRead, List<String> canWrite) {
        ObjectNode c = Json.object().put("userId", userId).put("iat", now()).put("exp", now() + 3600);
        ObjectNode p = c.putObject("permissions");
        ArrayNode r = p.putArray("canRead");
        canRead.forEach(r::add);
        ArrayNode w = p.putArray("canWrite");
        canWrite.forEach(w::add);
        p.put("isAdmin", false);
        return c;
    }

    static String doc(String name) {
        return name + "-" + System.nanoTime();
    }

    WsClient connect(String userId, List<String> canRead, List<String> canWrite) {
        WsClient c = WsClient.binary(server.wsUri());
        c.send(MessageType.AUTH, Json.object().put("id", "auth").put("token", token(claims(userId, canRead, canWrite), SECRET)));
        assertEquals(userId, c.await("auth_success").text("userId"));
        return c;
    }

    static ObjectNode delta(String documentId, String messageId, String field, String value) {
        ObjectNode d = Json.object().put("documentId", documentId).put("messageId", messageId);
        d.putObject("delta").put(field, value);
        return d;
    }

    static ObjectNode batch(String documentId, String messageId, String field, String value) {
        ObjectNode b = Json.object().put("documentId", documentId).put("messageId", messageId);
        ObjectNode op = b.putArray("deltas").addObject().put("type", "set").put("documentId", documentId)
                .put("field", field).put("value", value).put("clientId", "cl").put("timestamp", 1L);
        op.putObject("clock").put("cl", 1);
        return b;
    }

    static void assertDenied(WsClient c, String documentId) {
        WsClient.Received err = c.await("error", r -> "Permission denied".equals(r.text("error")));
        assertEquals(documentId, err.payload().path("details").path("documentId").asText(null), "denied " + err.payload());
    }

    /** Nothing the client received so far mentions the document or carries any of the values. */
    static void assertNothingAbout(WsClient c, String documentId, String... values) {
        for (WsClient.Received r : c.pending()) {
            String text = r.payload().toString();
            boolean denial = r.type().equals("error") && "Permission denied".equals(r.text("error"));
            if (!denial) {
                assertFalse(text.contains(documentId), "received " + r.type() + " about " + documentId + ": " + text);
            }
            for (String v : values) {
                assertFalse(text.contains(v), "received " + r.type() + " carrying " + v + ": " + text);
            }
        }
    }

    static ObjectNode syncState(WsClient c, String documentId, String requestId) {
        c.send(MessageType.SYNC_REQUEST, Json.object().put("id", requestId).put("documentId", documentId));
        return (ObjectNode) c.await("sync_response", r -> requestId.equals(r.text("requestId"))).payload().get("state");
    }

    static void pingPong(WsClient c) {
        c.send(MessageType.PING, Json.object());
        c.await("pong");
    }

    // ---------------------------------------------------------------- read confidentiality

    @Test
    void deniedReaderGetsNoStateNoBroadcastAndIsNotSubscribed() {
        String x = doc("secret-x");
        String y = doc("public-y");
        String v1 = "classified-" + System.nanoTime();
        String v2 = "classified-later-" + System.nanoTime();
        try (WsClient writer = connect("owner", List.of(x, y), List.of(x, y));
             WsClient outsider = connect("outsider", List.of(y), List.of(y))) {
            writer.send(MessageType.DELTA, delta(x, "w1", "plan", v1));
            assertEquals("w1", writer.await("ack").text("messageId"));

            outsider.send(MessageType.SUBSCRIBE, Json.object().put("documentId", x));
            assertDenied(outsider, x);
            outsider.send(MessageType.SYNC_REQUEST, Json.object().put("id", "sr").put("documentId", x));
            assertDenied(outsider, x);
            outsider.send(MessageType.SYNC_STEP1, Json.object().put("documentId", x));
            assertDenied(outsider, x);
            // Also in the JSON framing of a second connection of the same user.
            try (WsClient json = WsClient.json(server.wsUri())) {
                json.send(MessageType.AUTH, Json.object().put("token", token(claims("outsider", List.of(y), List.of(y)), SECRET)));
                json.await("auth_success");
                json.send(MessageType.SUBSCRIBE, Json.object().put("documentId", x));
                assertDenied(json, x);
                pingPong(json);
                assertNothingAbout(json, x, v1);
            }

            // A denied subscribe registered nothing: the only subscriber of X is its writer.
            assertEquals(1, server.app().documents().subscribers(x).size(), "subscribers of X");
            // A legitimate subscription to Y still works, so the outsider is a live, reading client.
            outsider.send(MessageType.SUBSCRIBE, Json.object().put("documentId", y));
            outsider.await("sync_response", r -> y.equals(r.text("documentId")));

            // The permitted writer writes X while the outsider is connected.
            writer.send(MessageType.DELTA, delta(x, "w2", "plan", v2));
            assertEquals("w2", writer.await("ack", r -> "w2".equals(r.text("messageId"))).text("messageId"));
            writer.send(MessageType.DELTA_BATCH, batch(x, "w3", "budget", v2));
            assertEquals("w3", writer.await("ack", r -> "w3".equals(r.text("messageId"))).text("messageId"));
            writer.awaitField("budget", op -> v2.equals(op.path("value").asText()));
            writer.send(MessageType.DELTA, delta(y, "w4", "note", "public"));
            outsider.await("delta", r -> "public".equals(r.text("value"))); // broadcasts of Y do arrive...
            outsider.expectNone("sync_response", QUIET);
            for (WsClient.Received r : outsider.pending()) { // ...but none of X
                assertFalse(r.type().equals("delta") && x.equals(r.text("documentId")), "delta of X: " + r.payload());
            }
            assertNothingAbout(outsider, x, v1, v2);
            assertFalse(outsider.isClosed(), "a permission error must not close the connection");
        }
    }

    @Test
    void writeOnlyClientNeverReceivesWhatOthersWrite() {
        String x = doc("drop-box");
        String secret = "others-secret-" + System.nanoTime();
        try (WsClient owner = connect("owner", List.of(x), List.of(x));
             WsClient dropper = connect("dropper", List.of(), List.of(x))) {
            owner.send(MessageType.SUBSCRIBE, Json.object().put("documentId", x));
            owner.await("sync_response");

            // Write access does not imply read (§7.2): the write is accepted...
            dropper.send(MessageType.DELTA, delta(x, "d1", "submission", "mine"));
            assertEquals("d1", dropper.await("ack").text("messageId"));
            owner.await("delta", r -> "mine".equals(r.text("value")));
            // ...but writing must not make the writer a reader of everybody else's writes.
            owner.send(MessageType.DELTA, delta(x, "o1", "grades", secret));
            assertEquals("o1", owner.await("ack").text("messageId"));
            owner.await("delta", r -> secret.equals(r.text("value")));
            owner.send(MessageType.AWARENESS_UPDATE, (ObjectNode) Json.object().put("documentId", x)
                    .put("clientId", "owner-client").put("clock", 1)
                    .set("state", Json.object().put("cursor", secret)));
            owner.await("awareness_update", r -> "owner-client".equals(r.text("clientId")));
            dropper.send(MessageType.SUBSCRIBE, Json.object().put("documentId", x));
            assertDenied(dropper, x);
            pingPong(dropper);
            dropper.expectNone("sync_response", QUIET);
            assertNothingAbout(dropper, "\u0000", secret);
            for (WsClient.Received r : dropper.pending()) {
                assertFalse(r.type().equals("awareness_update") || r.type().equals("awareness_state"),
                        "presence of an unreadable document: " + r.payload());
            }
            // Not even the echo of its own write: a broadcast carries the document's clock.
            dropper.expectNone("delta", Duration.ZERO);
            assertEquals(1, server.app().documents().subscribers(x).size(), "only the owner subscribes to X");
        }
    }

    @Test
    void presenceOfAnUnreadableDocumentIsNeitherDeliveredNorAccepted() {
        String x = doc("presence-x");
        String y = doc("presence-y");
        String cursor = "cursor-" + System.nanoTime();
        try (WsClient member = connect("member", List.of(x, y), List.of(x));
             WsClient outsider = connect("outsider", List.of(y), List.of())) {
            member.send(MessageType.AWARENESS_SUBSCRIBE, Json.object().put("documentId", x));
            member.await("awareness_state", r -> x.equals(r.text("documentId")));

            outsider.send(MessageType.AWARENESS_SUBSCRIBE, Json.object().put("documentId", x));
            assertDenied(outsider, x);
            outsider.send(MessageType.AWARENESS_UPDATE, (ObjectNode) Json.object().put("documentId", x)
                    .put("clientId", "intruder").put("clock", 1).set("state", Json.object().put("name", "intruder")));
            assertDenied(outsider, x);
            outsider.send(MessageType.AWARENESS_SUBSCRIBE, Json.object().put("documentId", y));
            outsider.await("awareness_state", r -> y.equals(r.text("documentId")));

            // The member's presence on X reaches X's subscribers but not the outsider.
            member.send(MessageType.AWARENESS_UPDATE, (ObjectNode) Json.object().put("documentId", x)
                    .put("clientId", "member-client").put("clock", 1).set("state", Json.object().put("cursor", cursor)));
            member.await("awareness_update", r -> "member-client".equals(r.text("clientId")));
            // The denied update stored nothing: a fresh reader of X sees only the member.
            try (WsClient reader = connect("reader", List.of(x), List.of())) {
                reader.send(MessageType.AWARENESS_SUBSCRIBE, Json.object().put("documentId", x));
                JsonNode states = reader.await("awareness_state", r -> x.equals(r.text("documentId"))).payload().get("states");
                assertEquals(1, states.size(), "states: " + states);
                assertEquals("member-client", states.get(0).path("clientId").asText());
            }
            member.expectNone("awareness_update", Duration.ZERO);
            for (WsClient.Received r : member.pending()) {
                assertFalse(r.payload().toString().contains("intruder"), "intruder presence delivered: " + r.payload());
            }
            // Presence on Y does reach the outsider, so it is really listening.
            member.send(MessageType.AWARENESS_UPDATE, (ObjectNode) Json.object().put("documentId", y)
                    .put("clientId", "member-client").put("clock", 2).set("state", Json.object().put("cursor", "on-y")));
            outsider.await("awareness_update", r -> y.equals(r.text("documentId")));
            outsider.expectNone("awareness_state", QUIET);
            assertNothingAbout(outsider, x, cursor);
        }
    }

    // ---------------------------------------------------------------- write integrity

    @Test
    void clientWithoutWritePermissionCannotChangeADocument() {
        String x = doc("locked");
        try (WsClient owner = connect("owner", List.of(x), List.of(x));
             WsClient reader = connect("reader", List.of(x), List.of());
             WsClient stranger = connect("stranger", List.of(), List.of())) {
            owner.send(MessageType.DELTA, delta(x, "o1", "title", "original"));
            assertEquals("o1", owner.await("ack").text("messageId"));
            reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", x));
            assertEquals("original", reader.await("sync_response").payload().path("state").path("title").asText());

            for (WsClient attacker : List.of(reader, stranger)) {
                attacker.send(MessageType.DELTA, delta(x, "bad-delta", "title", "DEFACED"));
                assertDenied(attacker, x);
                attacker.send(MessageType.DELTA_BATCH, batch(x, "bad-batch", "title", "DEFACED-BATCH"));
                assertDenied(attacker, x);
                // A delete through a batch.
                ObjectNode delete = Json.object().put("documentId", x).put("messageId", "bad-delete");
                delete.putArray("deltas").addObject().put("type", "delete").put("field", "title");
                attacker.send(MessageType.DELTA_BATCH, delete);
                assertDenied(attacker, x);
                // The same batch split into chunks is checked after reassembly.
                byte[] whole = WsClient.encode(MessageType.DELTA_BATCH, batch(x, "bad-chunked", "title", "DEFACED-CHUNK"));
                int half = whole.length / 2;
                for (int i = 0; i < 2; i++) {
                    byte[] part = java.util.Arrays.copyOfRange(whole, i == 0 ? 0 : half, i == 0 ? half : whole.length);
                    attacker.send(MessageType.DELTA_BATCH_CHUNK, Json.object().put("chunkId", "ch").put("totalChunks", 2)
                            .put("chunkIndex", i).put("data", Base64.getEncoder().encodeToString(part)));
                }
                assertDenied(attacker, x);
                pingPong(attacker);
                attacker.expectNone("ack", Duration.ZERO);
            }
            reader.expectNone("delta", QUIET);
            ObjectNode state = syncState(reader, x, "check");
            assertEquals("original", state.path("title").asText(), "state: " + state);
            assertEquals(1, state.size(), "state: " + state);
            ObjectNode ownerView = syncState(owner, x, "check-owner");
            assertEquals(state, ownerView);
            assertFalse(reader.isClosed());
            assertFalse(stranger.isClosed());
        }
    }

    // ---------------------------------------------------------------- forged and expired tokens

    void assertRefused(String what, String token) {
        try (WsClient c = WsClient.binary(server.wsUri())) {
            c.send(MessageType.AUTH, Json.object().put("id", "a").put("token", token));
            WsClient.Received err = c.await("auth_error");
            assertEquals("Authentication failed", err.text("error"), what);
            WsClient.Closed closed = c.awaitClose();
            assertEquals(1008, closed.code(), what + ": " + closed);
            assertTrue(c.pending().stream().noneMatch(r -> r.type().equals("auth_success")), what);
        }
    }

    @Test
    void expiredTamperedForeignAndUnsignedTokensAreRefused() {
        String x = doc("guarded");
        ObjectNode expired = claims("late", List.of("*"), List.of("*")).put("iat", now() - 7200).put("exp", now() - 1);
        assertRefused("expired", token(expired, SECRET));
        ObjectNode notYet = claims("early", List.of("*"), List.of("*")).put("nbf", now() + 3600);
        assertRefused("not yet valid", token(notYet, SECRET));

        String good = token(claims("eve", List.of(x), List.of()), SECRET);
        String[] parts = good.split("\\.");
        ObjectNode elevated = claims("eve", List.of("*"), List.of("*"));
        elevated.with("permissions").put("isAdmin", true);
        assertRefused("tampered payload", parts[0] + "." + b64(elevated.toString()) + "." + parts[2]);
        assertRefused("tampered signature", parts[0] + "." + parts[1] + "." + b64(new byte[32]));
        assertRefused("signature dropped", parts[0] + "." + parts[1] + ".");
        assertRefused("wrong secret", token(elevated, "another-secret-of-at-least-forty-characters!"));
        assertRefused("secret prefix", token(elevated, SECRET.substring(0, 32)));
        String body = b64(elevated.toString());
        assertRefused("alg none", b64("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." + body + ".");
        assertRefused("alg None", b64("{\"alg\":\"None\",\"typ\":\"JWT\"}") + "." + body + ".");
        assertRefused("alg none with signature", b64("{\"alg\":\"none\"}") + "." + body + "." + parts[2]);
        // HS256 header swapped for HS512 over the same signature (algorithm confusion).
        String hs512 = b64("{\"alg\":\"HS512\",\"typ\":\"JWT\"}");
        assertRefused("alg swapped", hs512 + "." + parts[1] + "." + parts[2]);
        assertRefused("RS256", b64("{\"alg\":\"RS256\"}") + "." + body + "." + b64(hmac("HmacSHA256", SECRET,
                b64("{\"alg\":\"RS256\"}") + "." + body)));
        assertRefused("four parts", good + ".x");
        assertRefused("garbage", "not.a.jwt");

        // A correctly signed token still works, and its permissions (not the forged ones) apply.
        try (WsClient c = connect("eve", List.of(x), List.of())) {
            c.send(MessageType.DELTA, delta(x, "e1", "k", "v"));
            assertDenied(c, x);
        }
    }

    // ---------------------------------------------------------------- tokens expiring on open sockets

    @Test
    void aSocketIsClosedWhenItsTokenExpiresUnlessItAuthenticatedAgain() {
        String x = doc("expiring");
        // A few seconds, so that authenticating surely happens before exp on a loaded machine.
        String brief = token(claims("brief", List.of(x), List.of(x)).put("exp", now() + 3), SECRET);
        try (WsClient expiring = WsClient.binary(server.wsUri()); WsClient renewed = WsClient.binary(server.wsUri())) {
            for (WsClient c : List.of(expiring, renewed)) {
                c.send(MessageType.AUTH, Json.object().put("id", "a").put("token", brief));
                assertEquals("brief", c.await("auth_success").text("userId"));
            }
            // Authenticating again with a fresh token replaces the expiry (and the identity).
            renewed.send(MessageType.AUTH, Json.object().put("id", "b").put("token",
                    token(claims("renewed", List.of(x), List.of()), SECRET)));
            renewed.await("auth_success", r -> "renewed".equals(r.text("userId")));
            expiring.send(MessageType.SUBSCRIBE, Json.object().put("documentId", x));
            expiring.await("sync_response");

            WsClient.Closed closed = expiring.awaitClose();
            assertEquals(1008, closed.code(), closed.toString());
            assertEquals("Token expired", closed.reason());
            // The expiry sweep that closed the first one has passed the second's old expiry too.
            renewed.expectNone("error", Duration.ofMillis(1500));
            pingPong(renewed);
            assertFalse(renewed.isClosed(), "re-authenticated socket closed");
            renewed.send(MessageType.DELTA, delta(x, "not-any-more", "k", "v"));
            assertDenied(renewed, x); // the permissions are the new token's
        }
    }

    // ---------------------------------------------------------------- secrets stay secret

    @Test
    void secretsAppearInNoLogRecordAndNoHealthOrMetricsBody() throws Exception {
        // Failures that get logged: bad tokens, a wrong API key, no credentials, bad input.
        assertRefused("wrong secret", token(claims("x", List.of("*"), List.of("*")), SECRET + "x"));
        assertRefused("garbage", SECRET);
        try (WsClient c = WsClient.binary(server.wsUri())) {
            c.send(MessageType.AUTH, Json.object().put("apiKey", API_KEY + "-wrong"));
            c.await("auth_error");
            assertEquals(1008, c.awaitClose().code());
        }
        try (WsClient c = WsClient.json(server.wsUri())) {
            c.send(MessageType.AUTH, Json.object().put("id", "nothing"));
            c.await("error");
            assertEquals(1008, c.awaitClose().code());
        }
        try (WsClient c = WsClient.binary(server.wsUri())) {
            c.send(MessageType.AUTH, Json.object().put("apiKey", API_KEY));
            c.await("auth_success");
            c.sendBinary(new byte[] {(byte) 0x99, 1, 2});
            c.await("error");
            String x = doc("secrets");
            c.send(MessageType.DELTA, delta(x, "s1", "k", "v"));
            c.await("ack");
        }

        HttpClient http = HttpClient.newHttpClient();
        List<String> bodies = new ArrayList<>();
        for (String path : List.of("/health", "/health/ready", "/health/live", "/metrics", "/")) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(server.httpUri(path)).timeout(Duration.ofSeconds(10))
                    .header("Accept", "text/plain").build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), path + ": " + r.body());
            bodies.add(path + " " + r.headers().map() + " " + r.body());
        }

        List<String> lines;
        synchronized (logLines) {
            lines = List.copyOf(logLines);
        }
        // The capture works: it saw the startup and the failures.
        assertTrue(lines.stream().anyMatch(l -> l.contains("failed to authenticate")), "no auth failure logged: " + lines);
        assertTrue(lines.stream().anyMatch(l -> l.contains("storage: postgres")), "startup not captured: " + lines);
        assertTrue(lines.stream().anyMatch(l -> l.contains("sent bad input")), "bad input not logged");
        for (String secret : List.of(SECRET, API_KEY, DB_PASSWORD, SECRET.substring(0, 20), "Zx9-security")) {
            for (String line : lines) {
                if (line.contains(secret)) {
                    fail("a log record contains a secret (" + secret + "): " + line);
                }
            }
            for (String body : bodies) {
                assertFalse(body.contains(secret), "a response contains a secret (" + secret + "): " + body);
            }
        }
    }
}
