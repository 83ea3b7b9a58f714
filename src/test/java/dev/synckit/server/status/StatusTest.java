package dev.synckit.server.status;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.auth.Jwt;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;
import org.redisson.Redisson;
import org.redisson.api.RBucket;
import org.redisson.api.RedissonClient;
import org.redisson.client.codec.StringCodec;
import org.redisson.config.Config;

import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Clock;
import java.time.Duration;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** The status page's JSON over real servers: shape, rates from real writes, admin-only with auth, the cluster view. */
class StatusTest {
    private static final HttpClient HTTP = HttpClient.newHttpClient();
    private static final String API_KEY = "status-test-admin-key";
    private static final String SECRET = "status-test-secret-of-at-least-forty-characters";

    static HttpResponse<String> get(TestServer server, String path, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(server.httpUri(path)).timeout(Duration.ofSeconds(10));
        if (headers.length > 0) {
            b.headers(headers);
        }
        return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    static JsonNode json(TestServer server, String... headers) throws Exception {
        HttpResponse<String> r = get(server, "/status/json", headers);
        assertEquals(200, r.statusCode(), r.body());
        assertEquals("application/json", r.headers().firstValue("content-type").orElse(""));
        return Json.MAPPER.readTree(r.body());
    }

    /** Polls the JSON until {@code ok} holds (the sampler runs once a second), failing with the last body. */
    static JsonNode awaitJson(TestServer server, Duration within, Predicate<JsonNode> ok, String... headers) throws Exception {
        long deadline = System.nanoTime() + within.toNanos();
        JsonNode last;
        do {
            last = json(server, headers);
            if (ok.test(last)) {
                return last;
            }
            Thread.sleep(200);
        } while (System.nanoTime() < deadline);
        return fail("status JSON never matched within " + within + "; last: " + last.toPrettyString());
    }

    private static double max(JsonNode values) {
        double m = 0;
        for (JsonNode v : values) {
            m = Math.max(m, v.asDouble());
        }
        return m;
    }

    static WsClient subscriber(TestServer server, String doc) {
        WsClient c = WsClient.binary(server.wsUri());
        c.send(MessageType.SUBSCRIBE, Json.object().put("id", "s-" + doc).put("documentId", doc));
        c.await("sync_response");
        return c;
    }

    @Test
    void jsonHasTheInstanceFiguresAndWritesRaiseTheWriteRate() throws Exception {
        try (TestServer server = TestServer.start(Map.of("synckit.auth.api-keys", API_KEY))) {
            HttpResponse<String> page = get(server, "/status");
            assertEquals(200, page.statusCode());
            assertTrue(page.headers().firstValue("content-type").orElse("").startsWith("text/html"));
            assertTrue(page.body().contains("SyncKit status"), "the page itself");
            assertTrue(page.headers().firstValue("content-security-policy").orElse("").contains("default-src 'none'"));

            JsonNode first = json(server);
            assertEquals("local", first.path("instanceId").asText());
            assertFalse(first.path("authRequired").asBoolean(true));
            assertFalse(first.path("cluster").path("redis").asBoolean(true));
            assertEquals(1, first.path("instances").size());
            JsonNode self = first.path("instances").get(0);
            for (String field : new String[]{"host", "sampledAt", "startedAt", "uptimeSeconds", "connections", "users",
                    "cachedDocuments", "writesTotal", "broadcastsTotal", "writesPerSecond", "broadcastsPerSecond", "ageMs"}) {
                assertTrue(self.has(field), field + " in " + self);
            }
            assertTrue(self.path("series").path("writes").isArray());
            assertTrue(self.path("series").path("broadcasts").isArray());
            assertEquals(1000, self.path("series").path("intervalMs").asInt());
            assertTrue(self.path("documents").path("bySubscribers").isArray());
            // The backend state comes from the health checks (memory storage: always UP).
            JsonNode checks = awaitJson(server, Duration.ofSeconds(5), j -> j.at("/instances/0/checks").size() > 0)
                    .at("/instances/0/checks");
            assertEquals("storage", checks.get(0).path("name").asText());
            assertEquals("UP", checks.get(0).path("status").asText());
            long writesBefore = self.path("writesTotal").asLong();

            String doc = "status-hot-doc";
            int writes = 30;
            try (WsClient watcher = subscriber(server, doc); WsClient writer = WsClient.binary(server.wsUri())) {
                for (int i = 0; i < writes; i++) {
                    writer.send(MessageType.DELTA, WsClient.delta("w" + i, doc, "f" + (i % 3), i));
                    writer.await("ack", r -> r.text("messageId") != null);
                }
                JsonNode after = awaitJson(server, Duration.ofSeconds(10), j -> {
                    JsonNode i = j.at("/instances/0");
                    return i.path("writesTotal").asLong() >= writesBefore + writes && max(i.at("/series/writes")) > 0
                            && max(i.at("/series/broadcasts")) > 0 && i.at("/documents/byWrites").size() > 0;
                });
                JsonNode i = after.at("/instances/0");
                assertTrue(i.path("connections").asInt() >= 2, "watcher and writer: " + i);
                // No admin credentials: document ids stay hidden (they can be a document's only secret).
                assertFalse(after.path("documentIds").asBoolean(true));
                JsonNode hot = i.at("/documents/byWrites/0");
                assertFalse(hot.has("id"), hot.toString());
                assertEquals(DocumentActivity.ref(doc), hot.path("ref").asText());
                assertEquals(writes, hot.path("recentWrites").asLong());
                assertEquals(2, hot.path("subscribers").asInt(), "watcher and writer subscribe");

                JsonNode asAdmin = json(server, "X-API-Key", API_KEY);
                assertTrue(asAdmin.path("documentIds").asBoolean());
                assertEquals(doc, asAdmin.at("/instances/0/documents/bySubscribers/0/id").asText());
            }
        }
    }

    @Test
    void withAuthRequiredTheJsonIsForAdminsOnly() throws Exception {
        try (TestServer server = TestServer.start(Map.of("synckit.auth.required", "true",
                "synckit.auth.jwt-secret", SECRET, "synckit.auth.api-keys", API_KEY))) {
            assertEquals(200, get(server, "/status").statusCode(), "the page holds no data: it asks for a key");

            HttpResponse<String> none = get(server, "/status/json");
            assertEquals(401, none.statusCode());
            JsonNode body = Json.MAPPER.readTree(none.body());
            assertEquals("AUTH_REQUIRED", body.path("code").asText());
            assertTrue(body.path("error").isTextual());
            assertEquals(401, get(server, "/status/json", "X-API-Key", "wrong").statusCode());

            Jwt jwt = new Jwt(SECRET, Clock.systemUTC(), new Jwt.Rules("", "",
                    false, Duration.ofDays(1)));
            String user = jwt.sign(claims("u1", false), 600);
            HttpResponse<String> forbidden = get(server, "/status/json", "Authorization", "Bearer " + user);
            assertEquals(403, forbidden.statusCode(), forbidden.body());
            assertEquals("PERMISSION_DENIED", Json.MAPPER.readTree(forbidden.body()).path("code").asText());

            JsonNode byKey = json(server, "X-API-Key", API_KEY);
            assertTrue(byKey.path("authRequired").asBoolean());
            assertEquals(1, byKey.path("instances").size());
            String admin = jwt.sign(claims("root", true), 600);
            assertTrue(json(server, "Authorization", "Bearer " + admin).path("documentIds").asBoolean());
        }
    }

    private static ObjectNode claims(String user, boolean admin) {
        ObjectNode c = Json.object().put("userId", user);
        c.putObject("permissions").put("isAdmin", admin).putArray("canRead").add("*");
        return c;
    }

    @Test
    void twoInstancesSharingRedisEachListBoth() throws Exception {
        String prefix = TestRedis.freshPrefix();
        try (TestDatabase db = TestDatabase.create(); TestServer one = TestServer.start(TestRedis.node(db, prefix))) {
            String oneId;
            String twoId;
            try (TestServer two = TestServer.start(TestRedis.node(db, prefix)); WsClient onTwo = subscriber(two, "cluster-status-doc")) {
                oneId = json(one).path("instanceId").asText();
                twoId = json(two).path("instanceId").asText();
                assertFalse(oneId.equals(twoId) || oneId.equals("local"), oneId + " / " + twoId);
                for (TestServer s : new TestServer[]{one, two}) {
                    JsonNode j = awaitJson(s, Duration.ofSeconds(10), x -> ids(x).equals(Set.of(oneId, twoId)));
                    assertTrue(j.path("cluster").path("redis").asBoolean());
                    assertEquals(2, j.path("cluster").path("instances").asInt());
                    assertTrue(j.path("cluster").path("error").isMissingNode(), j.toString());
                }
                assertSnapshotKey(prefix, twoId);
                // Instance one sees instance two's own figures (its connection), read from Redis.
                awaitJson(one, Duration.ofSeconds(10), x -> {
                    for (JsonNode i : x.path("instances")) {
                        if (i.path("instanceId").asText().equals(twoId)) {
                            return i.path("connections").asInt() >= 1 && i.at("/documents/bySubscribers").size() == 1;
                        }
                    }
                    return false;
                });
            }
            // Two stopped publishing: its snapshot expires (TTL 5 s) and one lists only itself.
            awaitJson(one, Duration.ofSeconds(10), x -> ids(x).equals(Set.of(oneId)));
        }
    }

    /** The documented key holds the instance's snapshot, with a TTL of at most 5 s (so a dead instance drops out). */
    private static void assertSnapshotKey(String prefix, String instanceId) throws Exception {
        Config config = new Config();
        config.useSingleServer().setAddress(TestRedis.url());
        RedissonClient redis = Redisson.create(config);
        try {
            RBucket<String> bucket = redis.getBucket(prefix + "status:" + instanceId, StringCodec.INSTANCE);
            long ttl = bucket.remainTimeToLive();
            assertTrue(ttl > 0 && ttl <= 5000, "TTL " + ttl + " ms");
            assertEquals(instanceId, Json.MAPPER.readTree(bucket.get()).path("instanceId").asText());
            assertTrue(redis.getScoredSortedSet(prefix + "status-instances", StringCodec.INSTANCE).contains(instanceId));
        } finally {
            redis.shutdown();
        }
    }

    /** Several instances need a shared PostgreSQL besides Redis (as in ClusterTest). */
    private static Set<String> ids(JsonNode status) {
        Set<String> out = new HashSet<>();
        status.path("instances").forEach(i -> out.add(i.path("instanceId").asText()));
        return out;
    }
}
