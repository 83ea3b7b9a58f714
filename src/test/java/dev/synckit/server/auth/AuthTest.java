package dev.synckit.server.auth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Authentication and authorisation over a real server (PROTOCOL.md §7, §9.3): JWT and API-key auth,
 * per-document permissions, the unauthenticated state, auth timeout and the /auth HTTP routes.
 * Tokens are signed here with javax.crypto, independently of the server's {@link Jwt}.
 */
class AuthTest {
    static final String SECRET = "test-secret-that-is-at-least-32-characters-long";
    static final Duration QUIET = Duration.ofMillis(300);

    // ---------------------------------------------------------------- token helpers (independent of Jwt)

    static String b64(byte[] bytes) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
    }

    static String b64(String s) {
        return b64(s.getBytes(StandardCharsets.UTF_8));
    }

    static byte[] hmac256(String secret, String input) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            return mac.doFinal(input.getBytes(StandardCharsets.US_ASCII));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** An HS256 token over exactly these claims, signed with the given secret. */
    static String token(ObjectNode claims, String secret) {
        String input = b64("{\"alg\":\"HS256\",\"typ\":\"JWT\"}") + "." + b64(claims.toString());
        return input + "." + b64(hmac256(secret, input));
    }

    static long now() {
        return System.currentTimeMillis() / 1000;
    }

    /** Claims with userId, a one-hour exp and the given permissions (null = no permissions claim). */
    static ObjectNode claims(String userId, List<String> canRead, List<String> canWrite, Boolean isAdmin) {
        ObjectNode c = Json.object().put("userId", userId).put("iat", now()).put("exp", now() + 3600);
        if (canRead != null || canWrite != null || isAdmin != null) {
            ObjectNode p = c.putObject("permissions");
            ArrayNode r = p.putArray("canRead");
            if (canRead != null) {
                canRead.forEach(r::add);
            }
            ArrayNode w = p.putArray("canWrite");
            if (canWrite != null) {
                canWrite.forEach(w::add);
            }
            p.put("isAdmin", isAdmin != null && isAdmin);
        }
        return c;
    }

    static List<String> strings(JsonNode array) {
        assertNotNull(array, "missing array");
        assertTrue(array.isArray(), "not an array: " + array);
        return java.util.stream.StreamSupport.stream(array.spliterator(), false).map(JsonNode::asText).toList();
    }

    static String doc(String name) {
        return name + "-" + System.nanoTime();
    }

    static ObjectNode delta(String id, String documentId, String field, String value) {
        ObjectNode d = Json.object().put("id", id).put("documentId", documentId);
        d.putObject("delta").put(field, value);
        d.putObject("vectorClock");
        return d;
    }

    static WsClient.Received authWithToken(WsClient c, String token) {
        c.send(MessageType.AUTH, Json.object().put("id", "a1").put("token", token));
        return c.await("auth_success");
    }

    static void assertRejected(WsClient c, MessageType type, ObjectNode auth) {
        c.send(type, auth);
        WsClient.Received err = c.await("auth_error");
        assertEquals("Authentication failed", err.text("error"));
        WsClient.Closed closed = c.awaitClose();
        assertEquals(1008, closed.code(), "close: " + closed);
        c.expectNone("auth_success", Duration.ZERO);
    }

    static void assertPermissionDenied(WsClient c, String documentId) {
        WsClient.Received err = c.await("error", r -> "Permission denied".equals(r.text("error")));
        assertEquals(documentId, err.payload().path("details").path("documentId").asText(null));
    }

    // ---------------------------------------------------------------- auth required, JWT + API keys

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class Required {
        TestServer server;

        @BeforeAll
        void start() {
            server = TestServer.start(Map.of(
                    "synckit.auth.required", "true",
                    "synckit.auth.jwt-secret", SECRET,
                    "synckit.auth.api-keys", "k1, k2",
                    "synckit.auth.dev-login", "true"));
            assertTrue(server.settings().auth().required());
            assertTrue(server.settings().auth().devLogin());
        }

        @AfterAll
        void stop() {
            server.close();
        }

        WsClient client() {
            return WsClient.binary(server.wsUri());
        }

        /** After a rejected client was closed, the server still serves a fresh one. */
        void assertServerStillServes() {
            try (WsClient fresh = WsClient.json(server.wsUri())) {
                WsClient.Received ok = authWithToken(fresh, token(claims("after-failure", List.of("*"), List.of(), false), SECRET));
                assertEquals("after-failure", ok.text("userId"));
                String id = doc("after");
                fresh.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                assertEquals(id, fresh.await("sync_response").text("documentId"));
            }
        }

        @Test
        void jwtWithUserIdClaimAuthenticatesWithItsPermissions() {
            try (WsClient c = client()) {
                String t = token(claims("alice", List.of("doc-a", "doc-b"), List.of("doc-a"), false), SECRET);
                WsClient.Received ok = authWithToken(c, t);
                assertEquals("alice", ok.text("userId"));
                JsonNode p = ok.payload().get("permissions");
                assertEquals(List.of("doc-a", "doc-b"), strings(p.get("canRead")));
                assertEquals(List.of("doc-a"), strings(p.get("canWrite")));
                assertFalse(p.get("isAdmin").asBoolean());
                assertTrue(ok.binaryFrame());
            }
        }

        @Test
        void jwtWithOnlySubUsesSubAsUserId() {
            try (WsClient c = WsClient.json(server.wsUri())) {
                ObjectNode claims = Json.object().put("sub", "bob-sub").put("exp", now() + 600);
                claims.putObject("permissions").putArray("canRead").add("x");
                WsClient.Received ok = authWithToken(c, token(claims, SECRET));
                assertEquals("bob-sub", ok.text("userId"));
                assertEquals(List.of("x"), strings(ok.payload().get("permissions").get("canRead")));
                assertFalse(ok.binaryFrame());
            }
        }

        @Test
        void userIdClaimWinsOverSub() {
            try (WsClient c = client()) {
                ObjectNode claims = claims("from-userId", List.of("*"), List.of(), false).put("sub", "from-sub");
                assertEquals("from-userId", authWithToken(c, token(claims, SECRET)).text("userId"));
            }
        }

        @Test
        void expiredTokenIsRejectedAndClosed() {
            ObjectNode claims = claims("late", List.of("*"), List.of("*"), false)
                    .put("iat", now() - 7200).put("exp", now() - 60);
            try (WsClient c = client()) {
                assertRejected(c, MessageType.AUTH, Json.object().put("token", token(claims, SECRET)));
            }
            assertServerStillServes();
        }

        @Test
        void tokenSignedWithAnotherSecretIsRejected() {
            String forged = token(claims("mallory", List.of("*"), List.of("*"), true),
                    "another-secret-that-is-also-32-characters-long");
            try (WsClient c = client()) {
                assertRejected(c, MessageType.AUTH, Json.object().put("token", forged));
            }
            assertServerStillServes();
        }

        @Test
        void tamperedPayloadIsRejected() {
            String good = token(claims("eve", List.of("doc-a"), List.of(), false), SECRET);
            String[] parts = good.split("\\.");
            String elevated = b64(claims("eve", List.of("*"), List.of("*"), true).toString());
            try (WsClient c = client()) {
                assertRejected(c, MessageType.AUTH, Json.object().put("token", parts[0] + "." + elevated + "." + parts[2]));
            }
        }

        @Test
        void algNoneIsRejected() {
            String body = b64(claims("none-user", List.of("*"), List.of("*"), true).toString());
            for (String unsigned : List.of(
                    b64("{\"alg\":\"none\",\"typ\":\"JWT\"}") + "." + body + ".",
                    b64("{\"alg\":\"none\"}") + "." + body + "." + b64("x"))) {
                try (WsClient c = client()) {
                    assertRejected(c, MessageType.AUTH, Json.object().put("token", unsigned));
                }
            }
            assertServerStillServes();
        }

        @Test
        void garbageTokenIsRejected() {
            try (WsClient c = WsClient.json(server.wsUri())) {
                assertRejected(c, MessageType.AUTH, Json.object().put("token", "not-a-jwt"));
            }
        }

        @Test
        void readPermissionIsPerDocument() {
            String a = doc("doc-a");
            String b = doc("doc-b");
            try (WsClient c = client()) {
                authWithToken(c, token(claims("reader", List.of(a), List.of(), false), SECRET));
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", a));
                assertEquals(a, c.await("sync_response").text("documentId"));

                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", b));
                assertPermissionDenied(c, b);
                c.send(MessageType.SYNC_REQUEST, Json.object().put("id", "r2").put("documentId", b));
                assertPermissionDenied(c, b);
                c.expectNone("sync_response", QUIET);
                assertFalse(c.isClosed(), "a permission error must not close the connection");
            }
        }

        @Test
        void writeWithoutCanWriteIsDeniedAndNotAcked() {
            String a = doc("doc-a");
            try (WsClient c = client(); WsClient watcher = client()) {
                authWithToken(c, token(claims("ro", List.of(a), List.of(), false), SECRET));
                authWithToken(watcher, token(claims("w", List.of(a), List.of(a), false), SECRET));
                watcher.send(MessageType.SUBSCRIBE, Json.object().put("documentId", a));
                watcher.await("sync_response");

                c.send(MessageType.DELTA, delta("w1", a, "title", "nope"));
                assertPermissionDenied(c, a);
                c.expectNone("ack", QUIET);
                watcher.expectNone("delta", Duration.ZERO);

                // The state is unchanged, and a writer with canWrite is acknowledged.
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", a));
                assertFalse(c.await("sync_response").payload().path("state").has("title"));
                watcher.send(MessageType.DELTA, delta("w2", a, "title", "yes"));
                assertEquals("w2", watcher.await("ack").text("messageId"));
                assertEquals("yes", c.await("delta", r -> "title".equals(r.text("field"))).text("value"));
            }
        }

        @Test
        void writeAccessDoesNotImplyRead() {
            String a = doc("doc-a");
            try (WsClient c = client()) {
                authWithToken(c, token(claims("wo", List.of(), List.of(a), false), SECRET));
                c.send(MessageType.DELTA, delta("w1", a, "f", "v"));
                assertEquals("w1", c.await("ack").text("messageId"));
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", a));
                assertPermissionDenied(c, a);
            }
        }

        @Test
        void wildcardAllowsAnyDocument() {
            try (WsClient c = client()) {
                authWithToken(c, token(claims("wild", List.of("*"), List.of("*"), false), SECRET));
                for (String id : List.of(doc("one"), doc("two"))) {
                    c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                    assertEquals(id, c.await("sync_response", r -> id.equals(r.text("documentId"))).text("documentId"));
                    c.send(MessageType.DELTA, delta("m-" + id, id, "k", "v"));
                    assertEquals("m-" + id, c.await("ack", r -> ("m-" + id).equals(r.text("messageId"))).text("messageId"));
                }
                c.expectNone("error", QUIET);
            }
        }

        @Test
        void wildcardIsNotAPrefixPattern() {
            String id = doc("docs");
            try (WsClient c = client()) {
                authWithToken(c, token(claims("prefix", List.of("docs*"), List.of(), false), SECRET));
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                assertPermissionDenied(c, id);
            }
        }

        @Test
        void adminMayDoEverything() {
            String id = doc("admin");
            try (WsClient c = client()) {
                WsClient.Received ok = authWithToken(c, token(claims("root", List.of(), List.of(), true), SECRET));
                assertTrue(ok.payload().get("permissions").get("isAdmin").asBoolean());
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                c.await("sync_response");
                c.send(MessageType.DELTA, delta("adm", id, "k", "v"));
                assertEquals("adm", c.await("ack").text("messageId"));
                c.expectNone("error", QUIET);
            }
        }

        @Test
        void tokenWithoutPermissionsAuthenticatesButReadsNothing() {
            String id = doc("none");
            ObjectNode claims = Json.object().put("userId", "nobody").put("exp", now() + 600);
            try (WsClient c = client()) {
                WsClient.Received ok = authWithToken(c, token(claims, SECRET));
                assertEquals("nobody", ok.text("userId"));
                JsonNode p = ok.payload().get("permissions");
                assertEquals(List.of(), strings(p.get("canRead")));
                assertEquals(List.of(), strings(p.get("canWrite")));
                assertFalse(p.get("isAdmin").asBoolean());
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                assertPermissionDenied(c, id);
                c.send(MessageType.DELTA, delta("x", id, "k", "v"));
                assertPermissionDenied(c, id);
                c.expectNone("ack", QUIET);
            }
        }

        @Test
        void apiKeyAuthenticatesAsApiKeyUser() {
            for (String key : List.of("k1", "k2")) {
                try (WsClient c = client()) {
                    c.send(MessageType.AUTH, Json.object().put("id", "a").put("apiKey", key));
                    WsClient.Received ok = c.await("auth_success");
                    assertEquals("api-key-user", ok.text("userId"));
                    assertTrue(ok.payload().get("permissions").get("isAdmin").asBoolean());
                    String id = doc("key");
                    c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                    c.await("sync_response");
                }
            }
        }

        @Test
        void wrongApiKeyIsRejectedAndClosed() {
            for (String key : List.of("k3", "k1, k2", "K1", "")) {
                try (WsClient c = client()) {
                    assertRejected(c, MessageType.AUTH, Json.object().put("apiKey", key));
                }
            }
            assertServerStillServes();
        }

        @Test
        void unauthenticatedRequestsAreRefusedButTheSocketStaysOpen() {
            String id = doc("pre");
            try (WsClient c = client()) {
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                WsClient.Received err = c.await("error");
                assertEquals("Not authenticated", err.text("error"));
                c.send(MessageType.DELTA, delta("d", id, "k", "v"));
                assertEquals("Not authenticated", c.await("error").text("error"));
                c.expectNone("ack", QUIET);
                c.expectNone("sync_response", Duration.ZERO);

                c.send(MessageType.PING, Json.object());
                c.await("pong");
                assertFalse(c.isClosed());

                // Authenticating afterwards works on the same socket.
                authWithToken(c, token(claims("later", List.of(id), List.of(), false), SECRET));
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                assertEquals(id, c.await("sync_response").text("documentId"));
            }
        }

        @Test
        void authWithoutCredentialsIsRefusedAndClosed() {
            try (WsClient c = client()) {
                c.send(MessageType.AUTH, Json.object().put("id", "a"));
                WsClient.Received err = c.await("error");
                assertEquals("Authentication required", err.text("error"));
                assertEquals("AUTH_REQUIRED", err.payload().path("details").path("code").asText(null));
                assertEquals(1008, c.awaitClose().code());
                c.expectNone("auth_success", Duration.ZERO);
            }
            assertServerStillServes();
        }

        // ------------------------------------------------------------ HTTP routes

        final HttpClient http = HttpClient.newHttpClient();

        /** {@code headers}: name, value, name, value, … */
        HttpResponse<String> post(String path, String body, String... headers) {
            HttpRequest.Builder b = HttpRequest.newBuilder(server.httpUri(path)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body));
            if (headers.length > 0) {
                b.headers(headers);
            }
            return send(b.build());
        }

        HttpResponse<String> get(String path, String authorization) {
            HttpRequest.Builder b = HttpRequest.newBuilder(server.httpUri(path)).GET();
            if (authorization != null) {
                b.header("Authorization", authorization);
            }
            return send(b.build());
        }

        HttpResponse<String> send(HttpRequest request) {
            try {
                return http.send(request, HttpResponse.BodyHandlers.ofString());
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        }

        static ObjectNode json(HttpResponse<String> r) {
            try {
                return (ObjectNode) Json.MAPPER.readTree(r.body());
            } catch (Exception e) {
                throw new AssertionError("not JSON (" + r.statusCode() + "): " + r.body(), e);
            }
        }

        ObjectNode login(String email) {
            HttpResponse<String> r = post("/auth/login", "{\"email\":\"" + email + "\",\"password\":\"pw\","
                    + "\"permissions\":{\"canRead\":[\"d1\"],\"canWrite\":[\"d1\"]}}");
            assertEquals(200, r.statusCode(), r.body());
            return json(r);
        }

        @Test
        void loginIssuesTokensThatWorkOverWebSocket() {
            ObjectNode body = login("ann@example.com");
            String access = body.path("accessToken").asText(null);
            assertNotNull(access);
            assertNotNull(body.path("refreshToken").asText(null));
            String userId = body.path("userId").asText(null);
            assertNotNull(userId);
            assertEquals("ann@example.com", body.path("email").asText(null));
            assertEquals(List.of("d1"), strings(body.path("permissions").get("canRead")));
            assertEquals(List.of("d1"), strings(body.path("permissions").get("canWrite")));
            assertEquals(3, access.split("\\.").length);

            // The token is a genuine HS256 JWT over our secret.
            String[] parts = access.split("\\.");
            assertEquals(b64(hmac256(SECRET, parts[0] + "." + parts[1])), parts[2]);

            try (WsClient c = client()) {
                WsClient.Received ok = authWithToken(c, access);
                assertEquals(userId, ok.text("userId"));
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", "d1"));
                assertEquals("d1", c.await("sync_response").text("documentId"));
                c.send(MessageType.DELTA, delta("login-w", "d1", "k", "v"));
                assertEquals("login-w", c.await("ack").text("messageId"));
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", "d2"));
                assertPermissionDenied(c, "d2");
            }
        }

        @Test
        void loginWithoutPasswordIs400() {
            for (String body : List.of("{\"email\":\"a@b.c\"}", "{\"email\":\"a@b.c\",\"password\":\"\"}",
                    "{\"password\":\"pw\"}", "", "not json")) {
                HttpResponse<String> r = post("/auth/login", body);
                assertEquals(400, r.statusCode(), body);
                assertEquals("Email and password required", json(r).path("error").asText(null), body);
            }
        }

        @Test
        void meReturnsTheTokensIdentity() {
            ObjectNode body = login("me@example.com");
            HttpResponse<String> r = get("/auth/me", "Bearer " + body.get("accessToken").asText());
            assertEquals(200, r.statusCode(), r.body());
            ObjectNode me = json(r);
            assertEquals(body.get("userId").asText(), me.path("userId").asText(null));
            assertEquals("me@example.com", me.path("email").asText(null));
            assertEquals(List.of("d1"), strings(me.path("permissions").get("canRead")));
            assertEquals(List.of("d1"), strings(me.path("permissions").get("canWrite")));
        }

        @Test
        void meRejectsMissingMalformedAndInvalidTokens() {
            HttpResponse<String> missing = get("/auth/me", null);
            assertEquals(401, missing.statusCode());
            assertEquals("Missing Authorization header", json(missing).path("error").asText(null));

            HttpResponse<String> basic = get("/auth/me", "Basic abc");
            assertEquals(401, basic.statusCode());
            assertEquals("Invalid Authorization header format", json(basic).path("error").asText(null));

            String expired = token(claims("old", List.of("*"), List.of(), false).put("exp", now() - 10), SECRET);
            HttpResponse<String> invalid = get("/auth/me", "Bearer " + expired);
            assertEquals(401, invalid.statusCode());
            assertEquals("Invalid or expired token", json(invalid).path("error").asText(null));
        }

        @Test
        void verifyReportsValidity() {
            long before = now();
            ObjectNode body = login("v@example.com");
            ObjectNode ok = json(post("/auth/verify", Json.object().put("token", body.get("accessToken").asText()).toString()));
            assertTrue(ok.path("valid").asBoolean(false), ok.toString());
            assertEquals(body.get("userId").asText(), ok.path("userId").asText(null));
            long expiresAt = ok.path("expiresAt").asLong();
            // default jwt-expires-in is 24h
            assertTrue(expiresAt >= before + 24 * 3600 && expiresAt <= now() + 24 * 3600 + 1, ok.toString());

            ObjectNode mine = json(post("/auth/verify", Json.object().put("token",
                    token(claims("independent", List.of(), List.of(), false), SECRET)).toString()));
            assertTrue(mine.path("valid").asBoolean(false));
            assertEquals("independent", mine.path("userId").asText(null));

            HttpResponse<String> garbage = post("/auth/verify", "{\"token\":\"garbage\"}");
            assertEquals(200, garbage.statusCode());
            ObjectNode bad = json(garbage);
            assertFalse(bad.path("valid").asBoolean(true));
            assertNull(bad.get("userId"));

            ObjectNode forged = json(post("/auth/verify", Json.object().put("token",
                    token(claims("f", List.of(), List.of(), false), "wrong-secret-wrong-secret-wrong-secret")).toString()));
            assertFalse(forged.path("valid").asBoolean(true));
        }

        @Test
        void refreshIssuesANewAccessToken() throws Exception {
            ObjectNode body = login("r@example.com");
            Thread.sleep(1100); // iat has one-second resolution: make the new token differ
            HttpResponse<String> r = post("/auth/refresh",
                    Json.object().put("refreshToken", body.get("refreshToken").asText()).toString());
            assertEquals(200, r.statusCode(), r.body());
            ObjectNode refreshed = json(r);
            String access = refreshed.path("accessToken").asText(null);
            assertNotNull(access);
            assertNotNull(refreshed.path("refreshToken").asText(null));
            assertNotEquals(body.get("accessToken").asText(), access);

            ObjectNode verified = json(post("/auth/verify", Json.object().put("token", access).toString()));
            assertTrue(verified.path("valid").asBoolean(false));
            assertEquals(body.get("userId").asText(), verified.path("userId").asText(null));
            try (WsClient c = client()) {
                assertEquals(body.get("userId").asText(), authWithToken(c, access).text("userId"));
            }
        }

        @Test
        void refreshKeepsThePermissionsAndTheEmail() {
            ObjectNode body = login("keep@example.com");
            String refreshToken = body.get("refreshToken").asText();
            for (int round = 0; round < 2; round++) { // and the refreshed refresh token keeps them too
                ObjectNode refreshed = json(post("/auth/refresh", Json.object().put("refreshToken", refreshToken).toString()));
                String access = refreshed.path("accessToken").asText(null);
                assertNotNull(access, refreshed.toString());
                refreshToken = refreshed.path("refreshToken").asText(null);

                ObjectNode me = json(get("/auth/me", "Bearer " + access));
                assertEquals(body.get("userId").asText(), me.path("userId").asText(null));
                assertEquals("keep@example.com", me.path("email").asText(null));
                assertEquals(List.of("d1"), strings(me.path("permissions").get("canRead")), me.toString());
                assertEquals(List.of("d1"), strings(me.path("permissions").get("canWrite")), me.toString());
                assertFalse(me.path("permissions").path("isAdmin").asBoolean(true));
                try (WsClient c = client()) {
                    WsClient.Received ok = authWithToken(c, access);
                    assertEquals(List.of("d1"), strings(ok.payload().get("permissions").get("canWrite")));
                    c.send(MessageType.DELTA, delta("refreshed-w" + round, "d1", "k", "v"));
                    assertEquals("refreshed-w" + round, c.await("ack").text("messageId"));
                }
            }
        }

        @Test
        void refreshTokensOnlyRefreshAndAccessTokensCannotRefresh() {
            ObjectNode body = login("kinds@example.com");
            String access = body.get("accessToken").asText();
            String refresh = body.get("refreshToken").asText();

            HttpResponse<String> r = post("/auth/refresh", Json.object().put("refreshToken", access).toString());
            assertEquals(401, r.statusCode(), r.body());
            // A token from elsewhere, without token_use, is an access token: it cannot refresh either.
            r = post("/auth/refresh", Json.object().put("refreshToken",
                    token(claims("elsewhere", List.of("*"), List.of(), false), SECRET)).toString());
            assertEquals(401, r.statusCode(), r.body());

            try (WsClient c = client()) {
                assertRejected(c, MessageType.AUTH, Json.object().put("token", refresh));
            }
            assertEquals(401, get("/auth/me", "Bearer " + refresh).statusCode());
            assertFalse(json(post("/auth/verify", Json.object().put("token", refresh).toString())).path("valid").asBoolean(true));
            // Any other token_use is refused as well.
            ObjectNode id = claims("id-token", List.of("*"), List.of("*"), false).put("token_use", "id");
            try (WsClient c = client()) {
                assertRejected(c, MessageType.AUTH, Json.object().put("token", token(id, SECRET)));
            }
        }

        @Test
        void loginMintsAdminTokensOnlyForAdminCredentials() {
            String askAdmin = "{\"email\":\"boss@example.com\",\"password\":\"pw\",\"permissions\":{\"isAdmin\":true}}";
            String user = token(claims("plain", List.of("*"), List.of("*"), false), SECRET);
            String admin = token(claims("root", List.of(), List.of(), true), SECRET);
            String adminRefresh = token(claims("root", List.of(), List.of(), true).put("token_use", "refresh"), SECRET);
            List<String[]> refused = List.of(new String[0], new String[] {"X-API-Key", "k3"},
                    new String[] {"X-API-Key", ""}, new String[] {"Authorization", "Bearer " + user},
                    new String[] {"Authorization", "Bearer " + adminRefresh}, new String[] {"Authorization", "Bearer garbage"},
                    new String[] {"Authorization", "Basic " + admin});
            for (String[] headers : refused) {
                for (String ask : List.of(askAdmin, askAdmin.replace("true", "\"true\""))) {
                    HttpResponse<String> r = post("/auth/login", ask, headers);
                    assertEquals(403, r.statusCode(), List.of(headers) + ": " + r.body());
                    assertTrue(json(r).path("error").asText("").contains("admin credentials"), r.body());
                    assertFalse(r.body().contains("Token"), r.body());
                }
            }
            // Non-admin logins need no credentials (dev login), and admin credentials do not make them admin.
            assertFalse(login("someone@example.com").path("permissions").path("isAdmin").asBoolean(true));

            for (String[] headers : List.<String[]>of(new String[] {"X-API-Key", "k1"}, new String[] {"X-API-Key", "k2"},
                    new String[] {"Authorization", "Bearer " + admin})) {
                HttpResponse<String> r = post("/auth/login", askAdmin, headers);
                assertEquals(200, r.statusCode(), List.of(headers) + ": " + r.body());
                ObjectNode body = json(r);
                assertTrue(body.path("permissions").path("isAdmin").asBoolean(false), body.toString());
                try (WsClient c = client()) {
                    assertTrue(authWithToken(c, body.get("accessToken").asText()).payload()
                            .path("permissions").path("isAdmin").asBoolean(false));
                }
                // Refreshing an admin token keeps it admin.
                ObjectNode refreshed = json(post("/auth/refresh",
                        Json.object().put("refreshToken", body.get("refreshToken").asText()).toString()));
                ObjectNode me = json(get("/auth/me", "Bearer " + refreshed.get("accessToken").asText()));
                assertTrue(me.path("permissions").path("isAdmin").asBoolean(false), me.toString());
            }
        }

        @Test
        void tokensWithoutExpOrLivingTooLongAreRefused() {
            long day = 24 * 3600;
            ObjectNode noExp = claims("forever", List.of("*"), List.of("*"), false);
            noExp.remove("exp");
            ObjectNode tooLong = claims("long", List.of("*"), List.of("*"), false).put("exp", now() + 31 * day);
            ObjectNode tooLongNoIat = claims("long-no-iat", List.of("*"), List.of("*"), false).put("exp", now() + 31 * day);
            tooLongNoIat.remove("iat");
            // Counted from iat: an old long-lived token stays refused even close to its exp.
            ObjectNode oldAndLong = claims("old", List.of("*"), List.of("*"), false)
                    .put("iat", now() - 31 * day).put("exp", now() + 600);
            // iat in the future does not shorten the lifetime.
            ObjectNode futureIat = claims("future", List.of("*"), List.of("*"), false)
                    .put("iat", now() + 20 * day).put("exp", now() + 40 * day);
            ObjectNode badIat = claims("bad-iat", List.of("*"), List.of("*"), false).put("iat", "yesterday");
            ObjectNode badExp = claims("bad-exp", List.of("*"), List.of("*"), false).put("exp", "tomorrow");
            for (ObjectNode refused : List.of(noExp, tooLong, tooLongNoIat, oldAndLong, futureIat, badIat, badExp)) {
                try (WsClient c = client()) {
                    assertRejected(c, MessageType.AUTH, Json.object().put("token", token(refused, SECRET)));
                }
                assertFalse(json(post("/auth/verify", Json.object().put("token", token(refused, SECRET)).toString()))
                        .path("valid").asBoolean(true), refused.toString());
                assertEquals(401, get("/auth/me", "Bearer " + token(refused, SECRET)).statusCode(), refused.toString());
            }
            // Just within the default maximum of 30 days.
            ObjectNode within = claims("within", List.of("*"), List.of(), false).put("exp", now() + 29 * day);
            try (WsClient c = client()) {
                assertEquals("within", authWithToken(c, token(within, SECRET)).text("userId"));
            }
        }

        @Test
        void badRefreshTokenIs401() {
            HttpResponse<String> r = post("/auth/refresh", "{\"refreshToken\":\"nope.nope.nope\"}");
            assertEquals(401, r.statusCode());
            assertEquals("Invalid or expired refresh token", json(r).path("error").asText(null));
            HttpResponse<String> missing = post("/auth/refresh", "{}");
            assertEquals(400, missing.statusCode());
        }
    }

    // ---------------------------------------------------------------- login off unless asked for

    static HttpResponse<String> post(TestServer server, String path, String body) {
        try {
            return HttpClient.newHttpClient().send(HttpRequest.newBuilder(server.httpUri(path))
                            .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    static ObjectNode payload(String token) {
        try {
            return (ObjectNode) Json.MAPPER.readTree(Base64.getUrlDecoder().decode(token.split("\\.")[1]));
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void loginIsNotMountedByDefaultEvenWithAJwtSecret() {
        try (TestServer server = TestServer.start(Map.of(
                "synckit.auth.required", "true",
                "synckit.auth.jwt-secret", SECRET,
                "synckit.auth.api-keys", "k1"))) {
            assertFalse(server.settings().auth().devLogin());
            for (String body : List.of("{\"email\":\"a@b.c\",\"password\":\"pw\"}",
                    "{\"email\":\"a@b.c\",\"password\":\"pw\",\"permissions\":{\"isAdmin\":true}}")) {
                HttpResponse<String> r = post(server, "/auth/login", body);
                assertEquals(404, r.statusCode(), r.body());
                assertFalse(r.body().contains("Token"), r.body());
            }
            // The other routes stay: they only check tokens.
            HttpResponse<String> verify = post(server, "/auth/verify",
                    Json.object().put("token", token(claims("v", List.of(), List.of(), false), SECRET)).toString());
            assertEquals(200, verify.statusCode(), verify.body());
            assertTrue(verify.body().contains("\"valid\":true"), verify.body());
            assertEquals(401, post(server, "/auth/refresh", "{\"refreshToken\":\"x.y.z\"}").statusCode());
        }
    }

    // ---------------------------------------------------------------- issuer, audience, exp-less tokens

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class IssuerAndAudience {
        static final String ISSUER = "https://id.example.com";
        static final String AUDIENCE = "synckit";
        TestServer server;

        @BeforeAll
        void start() {
            server = TestServer.start(Map.of(
                    "synckit.auth.required", "true",
                    "synckit.auth.jwt-secret", SECRET,
                    "synckit.auth.jwt-issuer", ISSUER,
                    "synckit.auth.jwt-audience", AUDIENCE,
                    "synckit.auth.allow-tokens-without-exp", "true",
                    "synckit.auth.max-token-lifetime", "2h",
                    "synckit.auth.jwt-expires-in", "1h",
                    "synckit.auth.jwt-refresh-expires-in", "2h",
                    "synckit.auth.dev-login", "true"));
        }

        @AfterAll
        void stop() {
            server.close();
        }

        ObjectNode claims(String userId) {
            ObjectNode c = AuthTest.claims(userId, List.of("*"), List.of("*"), false).put("iss", ISSUER).put("aud", AUDIENCE);
            return c.put("exp", now() + 600);
        }

        void accepted(String what, ObjectNode claims) {
            try (WsClient c = WsClient.binary(server.wsUri())) {
                assertEquals(claims.get("userId").asText(), authWithToken(c, token(claims, SECRET)).text("userId"), what);
            }
        }

        void refused(String what, ObjectNode claims) {
            try (WsClient c = WsClient.binary(server.wsUri())) {
                assertRejected(c, MessageType.AUTH, Json.object().put("token", token(claims, SECRET)));
            }
            assertTrue(post(server, "/auth/verify", Json.object().put("token", token(claims, SECRET)).toString())
                    .body().contains("\"valid\":false"), what);
        }

        @Test
        void issuerAndAudienceMustMatch() {
            accepted("matching", claims("match"));
            ObjectNode array = claims("array");
            array.putArray("aud").add("other").add(AUDIENCE);
            accepted("audience in an array", array);

            ObjectNode noIss = claims("no-iss");
            noIss.remove("iss");
            refused("no iss", noIss);
            refused("other iss", claims("other-iss").put("iss", "https://evil.example.com"));
            refused("iss differs in case", claims("case-iss").put("iss", ISSUER.toUpperCase()));
            ObjectNode noAud = claims("no-aud");
            noAud.remove("aud");
            refused("no aud", noAud);
            refused("other aud", claims("other-aud").put("aud", "another-service"));
            ObjectNode otherArray = claims("other-array");
            otherArray.putArray("aud").add("a").add("b");
            refused("aud array without ours", otherArray);
            ObjectNode nested = claims("nested");
            nested.putArray("aud").addArray().add(AUDIENCE);
            refused("aud nested array", nested);
        }

        @Test
        void tokensWithoutExpAreAcceptedWhenAllowedAndTheMaximumLifetimeIsConfigurable() {
            ObjectNode noExp = claims("no-exp");
            noExp.remove("exp");
            accepted("no exp, allowed", noExp);
            String verify = post(server, "/auth/verify", Json.object().put("token", token(noExp, SECRET)).toString()).body();
            assertTrue(verify.contains("\"valid\":true") && verify.contains("\"expiresAt\":null"), verify);

            refused("3h with a 2h maximum", claims("three-hours").put("exp", now() + 3 * 3600));
            accepted("1h with a 2h maximum", claims("one-hour").put("exp", now() + 3600));
        }

        @Test
        void tokensWeMintCarryIssuerAndAudience() {
            HttpResponse<String> r = post(server, "/auth/login",
                    "{\"email\":\"iss@example.com\",\"password\":\"pw\",\"permissions\":{\"canRead\":[\"*\"]}}");
            assertEquals(200, r.statusCode(), r.body());
            ObjectNode body = Required.json(r);
            for (String kind : List.of("accessToken", "refreshToken")) {
                ObjectNode claims = payload(body.get(kind).asText());
                assertEquals(ISSUER, claims.path("iss").asText(null), kind + ": " + claims);
                assertEquals(AUDIENCE, claims.path("aud").asText(null), kind + ": " + claims);
                assertTrue(claims.path("exp").asLong() - claims.path("iat").asLong() <= 2 * 3600, claims.toString());
            }
            assertEquals("refresh", payload(body.get("refreshToken").asText()).path("token_use").asText(null));
            try (WsClient c = WsClient.binary(server.wsUri())) {
                assertEquals(body.get("userId").asText(), authWithToken(c, body.get("accessToken").asText()).text("userId"));
            }
            HttpResponse<String> refreshed = post(server, "/auth/refresh",
                    Json.object().put("refreshToken", body.get("refreshToken").asText()).toString());
            assertEquals(200, refreshed.statusCode(), refreshed.body());
            assertEquals(ISSUER, payload(Required.json(refreshed).get("accessToken").asText()).path("iss").asText(null));
        }
    }

    // ---------------------------------------------------------------- auth timeout

    @Test
    void idleUnauthenticatedClientIsClosedAfterTheTimeout() {
        try (TestServer server = TestServer.start(Map.of(
                "synckit.auth.required", "true",
                "synckit.auth.jwt-secret", SECRET,
                // Long enough that the other client surely authenticates in time on a loaded machine.
                "synckit.auth.timeout-ms", "2000"))) {
            try (WsClient idle = WsClient.binary(server.wsUri());
                 WsClient authed = WsClient.binary(server.wsUri())) {
                long start = System.nanoTime();
                authWithToken(authed, token(claims("quick", List.of("*"), List.of(), false), SECRET));
                WsClient.Closed closed = idle.awaitClose();
                long elapsedMs = (System.nanoTime() - start) / 1_000_000;
                assertEquals(1008, closed.code(), closed.toString());
                assertTrue(elapsedMs >= 1000 && elapsedMs < 9000, "closed after " + elapsedMs + " ms");

                // The authenticated client is not affected by the timeout.
                authed.expectNone("error", Duration.ofMillis(700));
                assertFalse(authed.isClosed());
                authed.send(MessageType.PING, Json.object());
                authed.await("pong");
            }
        }
    }

    // ---------------------------------------------------------------- auth disabled

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class Disabled {
        TestServer server;

        @BeforeAll
        void start() {
            server = TestServer.start();
            assertFalse(server.settings().auth().required());
        }

        @AfterAll
        void stop() {
            server.close();
        }

        @Test
        void sdkClientThatNeverAuthenticatesCanReadAndWrite() {
            String id = doc("open");
            try (WsClient c = WsClient.binary(server.wsUri()); WsClient j = WsClient.json(server.wsUri())) {
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                assertEquals(id, c.await("sync_response").text("documentId"));
                c.send(MessageType.DELTA, delta("open-1", id, "title", "hi"));
                assertEquals("open-1", c.await("ack").text("messageId"));

                j.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
                assertEquals("hi", j.await("sync_response").payload().path("state").path("title").asText(null));
                c.expectNone("error", QUIET);
                j.expectNone("error", Duration.ZERO);
            }
        }

        @Test
        void tokenlessAuthIsAnonymousWithFullReadWrite() {
            try (WsClient c = WsClient.binary(server.wsUri())) {
                WsClient.Received ok = c.authAnonymously();
                assertEquals("anonymous", ok.text("userId"));
                JsonNode p = ok.payload().get("permissions");
                assertEquals(List.of("*"), strings(p.get("canRead")));
                assertEquals(List.of("*"), strings(p.get("canWrite")));
                assertFalse(c.isClosed());
            }
        }

        @Test
        void withoutJwtSecretTheLoginRoutesAreNotMounted() throws Exception {
            HttpResponse<String> r = HttpClient.newHttpClient().send(
                    HttpRequest.newBuilder(server.httpUri("/auth/login"))
                            .POST(HttpRequest.BodyPublishers.ofString("{\"email\":\"a\",\"password\":\"b\"}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(404, r.statusCode());
        }
    }
}
