package dev.synckit.server.api;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.testing.TestServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The HTTP API with auth required: the WebSocket's model of API keys, tokens and per-document permissions. */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ApiAccessTest {
    static final String SECRET = "api-access-test-secret-of-forty-chars-xy";
    static final String API_KEY = "ak-api-access-test-key";

    TestServer server;
    Http anonymous;
    Http admin;

    @BeforeAll
    void start() {
        server = TestServer.start(Map.of("synckit.auth.required", "true", "synckit.auth.jwt-secret", SECRET,
                "synckit.auth.api-keys", API_KEY));
        anonymous = new Http(server::httpUri);
        admin = anonymous.with("X-API-Key", API_KEY);
    }

    @AfterAll
    void stop() {
        server.close();
    }

    static String token(List<String> canRead, List<String> canWrite, boolean isAdmin) {
        ObjectNode claims = Json.object().put("sub", "user-1").put("exp", System.currentTimeMillis() / 1000 + 600);
        ObjectNode permissions = claims.putObject("permissions");
        canRead.forEach(permissions.putArray("canRead")::add);
        canWrite.forEach(permissions.putArray("canWrite")::add);
        permissions.put("isAdmin", isAdmin);
        Base64.Encoder b64 = Base64.getUrlEncoder().withoutPadding();
        String input = b64.encodeToString("{\"alg\":\"HS256\",\"typ\":\"JWT\"}".getBytes(StandardCharsets.UTF_8)) + "."
                + b64.encodeToString(claims.toString().getBytes(StandardCharsets.UTF_8));
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(SECRET.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            return input + "." + b64.encodeToString(mac.doFinal(input.getBytes(StandardCharsets.US_ASCII)));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    Http bearer(String token) {
        return anonymous.with("Authorization", "Bearer " + token);
    }

    @Test
    void withoutValidCredentialsEveryRouteIs401() {
        for (Http caller : List.of(anonymous, anonymous.with("X-API-Key", "wrong"), bearer("not.a.token"),
                bearer(token(List.of("*"), List.of("*"), true) + "x"))) {
            Http.Reply r = caller.get("/documents/doc-a");
            assertEquals(401, r.status(), r.raw());
            assertEquals("AUTH_REQUIRED", r.error());
            assertEquals(401, caller.patch("/documents/doc-a", "{\"fields\":{\"a\":1}}").status());
            assertEquals(401, caller.get("/documents").status());
            assertEquals(401, caller.post("/snapshots/doc-a", null).status());
        }
    }

    @Test
    void perDocumentPermissionsDecideAndListingAndDeletingNeedAnAdmin() {
        assertEquals(200, admin.patch("/documents/doc-shared", "{\"fields\":{\"a\":1}}").status());
        Http reader = bearer(token(List.of("doc-shared"), List.of(), false));
        Http writer = bearer(token(List.of(), List.of("doc-shared"), false));
        Http both = bearer(token(List.of("*"), List.of("*"), false));

        assertEquals(200, reader.get("/documents/doc-shared").status());
        Http.Reply denied = reader.patch("/documents/doc-shared", "{\"fields\":{\"a\":2}}");
        assertEquals(403, denied.status(), denied.raw());
        assertEquals("PERMISSION_DENIED", denied.error());
        assertEquals(403, reader.get("/documents/doc-other").status());
        assertEquals(403, reader.post("/snapshots/doc-shared", null).status());
        assertEquals(200, reader.get("/snapshots/doc-shared").status());

        assertEquals(403, writer.get("/documents/doc-shared").status()); // write does not imply read
        assertEquals(200, writer.patch("/documents/doc-shared", "{\"fields\":{\"a\":3}}").status());
        Http.Reply snap = writer.post("/snapshots/doc-shared", null);
        assertEquals(200, snap.status(), snap.raw());
        String snapshotId = snap.body().path("id").asText();
        assertEquals(403, writer.get("/snapshots/id/" + snapshotId).status());
        assertEquals(200, reader.get("/snapshots/id/" + snapshotId).status());
        assertEquals(403, reader.post("/snapshots/id/" + snapshotId + "/restore", null).status());
        assertEquals(200, writer.post("/snapshots/id/" + snapshotId + "/restore", null).status());

        assertEquals(403, both.get("/documents").status());
        assertEquals(403, both.delete("/documents/doc-shared").status());
        assertEquals(3, admin.get("/documents/doc-shared").body().path("fields").path("a").asInt());
        Http tokenAdmin = bearer(token(List.of(), List.of(), true));
        assertEquals(200, tokenAdmin.get("/documents?prefix=doc-").status());
        assertEquals(200, admin.delete("/documents/doc-shared").status());
        assertEquals(404, admin.get("/documents/doc-shared").status());
    }
}
