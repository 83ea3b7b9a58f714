package dev.synckit.server.health;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.auth.Jwt;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TcpProxy;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Clock;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Liveness, readiness with backend checks, and the Prometheus metrics. */
class HealthTest {
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    private record Reply(int status, JsonNode body, long millis) {}

    private static Reply get(TestServer server, String path) throws Exception {
        long start = System.nanoTime();
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(server.httpUri(path)).build(), HttpResponse.BodyHandlers.ofString());
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        return new Reply(r.statusCode(), r.body().startsWith("{") ? Json.MAPPER.readTree(r.body()) : null, ms);
    }

    private static Reply get(TestServer server, String path, String... headers) throws Exception {
        HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(server.httpUri(path)).headers(headers).build(),
                HttpResponse.BodyHandlers.ofString());
        return new Reply(r.statusCode(), Json.MAPPER.readTree(r.body()), 0);
    }

    /** Backend state may be up to a second old ({@link HealthRoutes#CHECKS_MAX_AGE}): asks until it shows. */
    private static Reply awaitReady(TestServer server, java.util.function.Predicate<Reply> shown) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        Reply r;
        do {
            r = get(server, "/health/ready");
        } while (!shown.test(r) && System.nanoTime() < deadline);
        return r;
    }

    private static JsonNode check(JsonNode body, String name) {
        for (JsonNode c : body.get("checks")) {
            if (c.get("name").asText().equals(name)) {
                return c;
            }
        }
        throw new AssertionError("no " + name + " check in " + body);
    }

    @Test
    void readinessFollowsTheDatabaseAndLivenessDoesNot() throws Exception {
        try (TestDatabase db = TestDatabase.create()) {
            URI a = db.address();
            try (TcpProxy proxy = new TcpProxy(a.getHost(), a.getPort());
                 TestServer server = TestServer.start(Map.of("synckit.storage.url", db.urlVia(proxy.port()),
                         "synckit.storage.connect-timeout-ms", "1000"))) {
                Reply ready = get(server, "/health/ready");
                assertEquals(200, ready.status(), ready.body().toString());
                assertEquals("UP", ready.body().get("status").asText());

                proxy.cut();
                Reply down = awaitReady(server, r -> r.status() == 503);
                assertEquals(503, down.status(), down.body().toString());
                assertEquals("DOWN", check(down.body(), "storage").get("status").asText());
                assertTrue(check(down.body(), "storage").has("error"));
                assertEquals(200, get(server, "/health/live").status());
                assertEquals("healthy", get(server, "/health").body().get("status").asText()); // upstream shape kept

                proxy.restore();
                Reply back = awaitReady(server, r -> r.status() == 200);
                assertEquals(200, back.status(), back.body().toString());

                proxy.hang(); // accepts the TCP connection, never answers
                Reply hung = awaitReady(server, r -> r.status() == 503);
                assertEquals(503, hung.status());
                assertTrue(hung.millis() < 2000, "the probe took " + hung.millis() + " ms against a hung database");
                assertEquals(200, get(server, "/health/live").status());
            }
        }
    }

    @Test
    void aRedisOutageIsDegradedButStillReady() throws Exception {
        URI redis = TestRedis.address();
        try (TestDatabase db = TestDatabase.create(); TcpProxy proxy = new TcpProxy(redis.getHost(), redis.getPort());
             TestServer server = TestServer.start(Map.of("synckit.storage.url", db.url(),
                     "synckit.redis.url", "redis://127.0.0.1:" + proxy.port(),
                     "synckit.redis.channel-prefix", TestRedis.freshPrefix(), "synckit.redis.timeout-ms", "500"))) {
            assertEquals("UP", get(server, "/health/ready").body().get("status").asText());
            proxy.cut();
            Reply degraded = awaitReady(server, r -> r.body().get("status").asText().equals("DEGRADED"));
            assertEquals(200, degraded.status(), degraded.body().toString());
            assertEquals("DEGRADED", degraded.body().get("status").asText());
            assertEquals("DEGRADED", check(degraded.body(), "redis").get("status").asText());
            assertTrue(check(degraded.body(), "redis").get("error").asText().length() > 0);
            assertEquals("UP", check(degraded.body(), "storage").get("status").asText());
            assertTrue(degraded.millis() < 2000, "the probe took " + degraded.millis() + " ms");
            assertEquals(200, get(server, "/health/live").status());
        }
    }

    private static final String ADMIN_KEY = "health-admin-key-" + System.nanoTime();
    private static final String SECRET = "health-test-secret-0123456789abcdef0123456789";

    private static String token(String user, boolean admin) {
        var claims = Json.object().put("userId", user);
        claims.putObject("permissions").put("isAdmin", admin).putArray("canRead").add("*");
        return new Jwt(SECRET, Clock.systemUTC(), new Jwt.Rules("", "", false, java.time.Duration.ofDays(1))).sign(claims, 300);
    }

    private static boolean listsDocument(Reply r, String id) {
        for (JsonNode d : r.body().path("documents").path("documents")) {
            if (d.path("id").asText().equals(id)) {
                return true;
            }
        }
        return false;
    }

    @Test
    void healthNamesDocumentsOnlyToAnAdmin() throws Exception {
        try (TestServer server = TestServer.start(Map.of("synckit.auth.required", "true",
                "synckit.auth.api-keys", ADMIN_KEY, "synckit.auth.jwt-secret", SECRET));
             WsClient c = WsClient.json(server.wsUri())) {
            c.send(MessageType.AUTH, Json.object().put("apiKey", ADMIN_KEY));
            c.await("auth_success");
            String id = "secret-doc-" + System.nanoTime();
            c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            c.await("sync_response");

            for (String[] none : new String[][] {{}, {"X-API-Key", "wrong-key"}, {"Authorization", "Bearer not-a-jwt"},
                    {"Authorization", "Bearer " + token("reader", false)}}) {
                Reply r = none.length == 0 ? get(server, "/health", "Accept", "application/json") : get(server, "/health", none);
                assertEquals(200, r.status());
                assertEquals(1, r.body().path("documents").path("totalDocuments").asInt(), r.body().toString());
                assertFalse(r.body().path("documents").has("documents"), String.join(" ", none) + ": " + r.body());
                assertFalse(r.body().toString().contains(id), String.join(" ", none) + ": " + r.body());
                assertEquals(1, r.body().path("connections").path("totalConnections").asInt(), "counts stay");
            }
            Reply admin = get(server, "/health", "X-API-Key", ADMIN_KEY);
            assertTrue(listsDocument(admin, id), admin.body().toString());
            assertEquals(1, admin.body().path("documents").path("documents").get(0).path("subscribers").asInt());
            assertTrue(listsDocument(get(server, "/health", "Authorization", "Bearer " + token("root", true)), id));
        }
        // Auth disabled (local development): anyone may open any document by id, so the ids stay hidden too.
        try (TestServer server = TestServer.start(Map.of("synckit.auth.api-keys", ADMIN_KEY));
             WsClient c = WsClient.json(server.wsUri())) {
            String id = "open-doc-" + System.nanoTime();
            c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", id));
            c.await("sync_response");
            assertFalse(listsDocument(get(server, "/health", "Accept", "application/json"), id));
            assertTrue(listsDocument(get(server, "/health", "X-API-Key", ADMIN_KEY), id));
        }
    }

    /** Without the shared, second-old round every request would probe PostgreSQL itself: 200 probes. */
    @Test
    void aFloodOfHealthRequestsProbesTheDatabaseAboutOnceASecond() throws Exception {
        try (TestDatabase db = TestDatabase.create();
             TestServer server = TestServer.start(Map.of("synckit.storage.url", db.url()))) {
            double before = metric(metrics(server), "synckit_health_probes_total", "check=\"storage\"");
            long start = System.nanoTime();
            try (ExecutorService clients = Executors.newFixedThreadPool(16)) {
                List<Future<Integer>> replies = new ArrayList<>();
                for (int i = 0; i < 200; i++) {
                    String path = i % 2 == 0 ? "/health" : "/health/ready";
                    replies.add(clients.submit(() -> get(server, path).status()));
                }
                for (Future<Integer> r : replies) {
                    assertEquals(200, r.get());
                }
            }
            long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start);
            double probes = metric(metrics(server), "synckit_health_probes_total", "check=\"storage\"") - before;
            // One round, then at most one more per second the flood lasted.
            assertTrue(probes >= 1 && probes <= 2 + seconds, probes + " storage probes for 200 requests in ~" + seconds + " s");
        }
    }

    private static double metric(String text, String name, String labelFragment) {
        double sum = 0;
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(\\{[^}]*\\})? ([0-9.eE+-]+)$").matcher(text);
        while (m.find()) {
            if (labelFragment == null || (m.group(1) != null && m.group(1).contains(labelFragment))) {
                sum += Double.parseDouble(m.group(2));
            }
        }
        return sum;
    }

    private static String metrics(TestServer server) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(server.httpUri("/metrics")).header("Accept", "text/plain").build(),
                HttpResponse.BodyHandlers.ofString()).body();
    }

    @Test
    void metricsMoveWithWebSocketTraffic() throws Exception {
        try (TestServer server = TestServer.start()) {
            String before = metrics(server);
            try (WsClient c = WsClient.binary(server.wsUri())) {
                for (int i = 0; i < 25; i++) {
                    var d = Json.object().put("id", "m" + i).put("documentId", "metrics-doc");
                    d.putObject("delta").put("n", i);
                    c.send(MessageType.DELTA, d);
                    String id = "m" + i;
                    c.await("ack", r -> id.equals(r.text("messageId")));
                }
                c.sendBinary(new byte[] {1, 2, 3});
                c.await("error");
                String after = metrics(server);
                assertTrue(metric(after, "synckit_messages_in_total", "type=\"delta\"")
                        - metric(before, "synckit_messages_in_total", "type=\"delta\"") >= 25, after);
                assertTrue(metric(after, "synckit_messages_out_total", "type=\"ack\"")
                        - metric(before, "synckit_messages_out_total", "type=\"ack\"") >= 25);
                assertTrue(metric(after, "synckit_ack_latency_seconds_count", null)
                        - metric(before, "synckit_ack_latency_seconds_count", null) >= 25);
                assertTrue(metric(after, "synckit_fanout_latency_seconds_count", null)
                        > metric(before, "synckit_fanout_latency_seconds_count", null));
                assertTrue(metric(after, "synckit_storage_commit_latency_seconds_count", null)
                        - metric(before, "synckit_storage_commit_latency_seconds_count", null) >= 25);
                assertTrue(metric(after, "synckit_errors_total", "code=\"INVALID_MESSAGE\"")
                        > metric(before, "synckit_errors_total", "code=\"INVALID_MESSAGE\""));
                assertTrue(metric(after, "synckit_connections_open", null) >= 1);
                assertTrue(after.contains("_bucket{"), "latency histograms have buckets");
            }
        }
    }
}
