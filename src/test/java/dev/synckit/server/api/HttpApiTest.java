package dev.synckit.server.api;

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
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The documents and snapshots routes against a real server, in memory and on PostgreSQL. */
class HttpApiTest {

    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    abstract static class Contract {
        TestServer server;
        Http http;

        abstract Map<String, String> settings();

        @BeforeAll
        void start() {
            Map<String, String> keys = new HashMap<>(settings());
            keys.put("synckit.limits.max-message-bytes", "65536");
            server = TestServer.start(keys);
            http = new Http(server::httpUri);
        }

        @AfterAll
        void stop() {
            server.close();
        }

        static String doc() {
            return "api-" + UUID.randomUUID();
        }

        WsClient subscribed(String doc) {
            WsClient c = WsClient.binary(server.wsUri());
            c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
            c.await("sync_response", r -> doc.equals(r.text("documentId")));
            return c;
        }

        static JsonNode delta(WsClient c, String field) {
            return c.await("delta", r -> field.equals(r.text("field"))).payload().get("value");
        }

        @Test
        void aPatchIsCommittedBroadcastAndReadBack() {
            String doc = doc();
            try (WsClient sub = subscribed(doc)) {
                Http.Reply r = http.patch("/documents/" + doc, "{\"fields\":{\"title\":\"Hello\",\"n\":1,\"tags\":[\"a\"]}}");
                assertEquals(200, r.status(), r.raw());
                assertEquals(doc, r.body().path("id").asText());
                assertTrue(r.body().path("clock").isObject() && !r.body().path("clock").isEmpty(), r.raw());
                assertEquals("Hello", delta(sub, "title").asText());
                assertEquals(1, delta(sub, "n").asInt());

                Http.Reply read = http.get("/documents/" + doc);
                assertEquals(200, read.status(), read.raw());
                assertEquals(Json.MAPPER.valueToTree(Map.of("title", "Hello", "n", 1, "tags", List.of("a"))), read.body().get("fields"));
                assertEquals(r.body().get("clock"), read.body().get("clock"));
                assertEquals(3, read.body().path("seq").asLong());
                assertEquals(1, read.body().path("subscribers").asInt());
                assertFalse(read.body().path("updatedAt").asText().isEmpty());

                // null and the wire tombstone both delete.
                assertEquals(200, http.patch("/documents/" + doc, "{\"fields\":{\"n\":null,\"tags\":{\"__deleted\":true}}}").status());
                assertTrue(delta(sub, "n").path("__deleted").asBoolean());
                assertEquals(Json.MAPPER.valueToTree(Map.of("title", "Hello")), http.get("/documents/" + doc).body().get("fields"));
            }
            // A client that subscribes afterwards gets the state written over HTTP.
            try (WsClient late = WsClient.binary(server.wsUri())) {
                late.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
                JsonNode state = late.await("sync_response").payload().get("state");
                assertEquals("Hello", state.path("title").asText());
                assertFalse(state.has("n"));
            }
        }

        @Test
        void aRetryWithTheSameIdempotencyKeyIsAppliedOnce() {
            String doc = doc();
            Http keyed = http.with("Idempotency-Key", "import-42");
            try (WsClient sub = subscribed(doc)) {
                Http.Reply first = keyed.patch("/documents/" + doc, "{\"fields\":{\"count\":1}}");
                assertEquals(200, first.status(), first.raw());
                delta(sub, "count");
                // Someone else writes in between; the retry must not undo it.
                assertEquals(200, http.patch("/documents/" + doc, "{\"fields\":{\"count\":2}}").status());
                delta(sub, "count");
                Http.Reply retry = keyed.patch("/documents/" + doc, "{\"fields\":{\"count\":1}}");
                assertEquals(200, retry.status(), retry.raw());
                sub.expectNone("delta", Duration.ofMillis(300));
                JsonNode read = http.get("/documents/" + doc).body();
                assertEquals(2, read.path("fields").path("count").asInt());
                assertEquals(2, read.path("seq").asLong());
                // The key is per document: the same key elsewhere is a new write.
                String other = doc();
                assertEquals(200, keyed.patch("/documents/" + other, "{\"fields\":{\"count\":1}}").status());
                assertEquals(1, http.get("/documents/" + other).body().path("fields").path("count").asInt());
            }
        }

        @Test
        void badRequestsGetAClearJsonError() {
            String doc = doc();
            Http.Reply notJson = http.patch("/documents/" + doc, "{not json");
            assertEquals(400, notJson.status());
            assertTrue(notJson.body().path("error").asText().contains("not valid JSON"), notJson.raw());
            assertEquals("BAD_REQUEST", notJson.error());
            assertEquals(400, http.patch("/documents/" + doc, "[1,2]").status());
            assertEquals(400, http.patch("/documents/" + doc, "{\"title\":\"no fields key\"}").status());
            assertEquals(400, http.patch("/documents/" + doc, "{\"fields\":{}}").status());
            assertEquals(400, http.patch("/documents/" + doc, "{\"fields\":{\"\":1}}").status());
            assertEquals(400, http.with("Idempotency-Key", "x".repeat(300)).patch("/documents/" + doc, "{\"fields\":{\"a\":1}}").status());
            Http.Reply big = http.patch("/documents/" + doc, "{\"fields\":{\"blob\":\"" + "x".repeat(70_000) + "\"}}");
            assertEquals(413, big.status(), big.raw());
            assertEquals("MESSAGE_TOO_LARGE", big.error());
            Http.Reply nul = http.patch("/documents/" + doc, "{\"fields\":{\"a\":{\"deep\":[\"x\\u0000y\"]}}}");
            assertEquals(400, nul.status(), nul.raw()); // PostgreSQL JSON cannot hold it: a client error, not an outage
            assertEquals(400, http.get("/documents?prefix=a%00b").status());
            Http.Reply badId = http.patch("/documents/has%20space", "{\"fields\":{\"a\":1}}");
            assertEquals(400, badId.status(), badId.raw());
            assertEquals("INVALID_DOCUMENT_ID", badId.error());
            assertEquals(400, http.get("/documents/" + "x".repeat(256)).status());
            assertEquals(400, http.post("/snapshots/bad%2Aid", null).status());
            Http.Reply missing = http.get("/documents/" + doc);
            assertEquals(404, missing.status());
            assertEquals("NOT_FOUND", missing.error());
            assertEquals(404, http.delete("/documents/" + doc).status());
            assertEquals(400, http.get("/documents?limit=0").status());
            assertEquals(400, http.get("/documents?limit=abc").status());
            assertEquals(400, http.get("/documents?cursor=%25%25%25").status());
            assertEquals(404, http.post("/snapshots/" + doc, null).status());
            assertEquals(404, http.get("/snapshots/" + doc + "/latest").status());
            assertEquals(404, http.get("/snapshots/id/not-a-snapshot").status());
            assertEquals(404, http.get("/snapshots/id/" + UUID.randomUUID()).status());
            assertEquals(404, http.delete("/snapshots/id/" + UUID.randomUUID()).status());
            assertEquals(404, http.post("/snapshots/id/" + UUID.randomUUID() + "/restore", null).status());
            // Nothing of the refused writes was stored.
            assertEquals(404, http.get("/documents/" + doc).status());
        }

        @Test
        void listingPagesThroughAPrefixWithACursor() {
            String prefix = "list-" + UUID.randomUUID() + "-";
            List<String> ids = new ArrayList<>();
            for (int i = 0; i < 5; i++) {
                ids.add(prefix + i);
                assertEquals(200, http.patch("/documents/" + prefix + i, "{\"fields\":{\"a\":1,\"b\":" + i + "}}").status());
            }
            List<String> seen = new ArrayList<>();
            String cursor = null;
            int pages = 0;
            do {
                Http.Reply page = http.get("/documents?prefix=" + prefix + "&limit=2" + (cursor == null ? "" : "&cursor=" + cursor));
                assertEquals(200, page.status(), page.raw());
                for (JsonNode d : page.body().get("documents")) {
                    seen.add(d.path("id").asText());
                    assertEquals(2, d.path("fields").asInt());
                    assertEquals(0, d.path("subscribers").asInt());
                    assertFalse(d.path("updatedAt").asText().isEmpty());
                }
                cursor = page.body().get("next").isNull() ? null : page.body().get("next").asText();
                pages++;
            } while (cursor != null);
            assertEquals(ids, seen);
            assertEquals(3, pages);
        }

        @Test
        void deleteRemovesEveryFieldForEverySubscriberAndAWriteBringsItBack() {
            String doc = doc();
            assertEquals(200, http.patch("/documents/" + doc, "{\"fields\":{\"a\":1,\"b\":2}}").status());
            try (WsClient sub = subscribed(doc)) {
                Http.Reply r = http.delete("/documents/" + doc);
                assertEquals(200, r.status(), r.raw());
                assertTrue(delta(sub, "a").path("__deleted").asBoolean());
                assertTrue(delta(sub, "b").path("__deleted").asBoolean());
                assertEquals(404, http.get("/documents/" + doc).status());
                assertTrue(http.get("/documents?prefix=" + doc).body().get("documents").isEmpty());
                assertEquals(200, http.patch("/documents/" + doc, "{\"fields\":{\"c\":3}}").status());
                assertEquals(3, delta(sub, "c").asInt());
                assertEquals(Json.MAPPER.valueToTree(Map.of("c", 3)), http.get("/documents/" + doc).body().get("fields"));
            }
        }

        @Test
        void snapshotsAreTakenListedReadRestoredAndDeleted() {
            String doc = doc();
            assertEquals(200, http.patch("/documents/" + doc, "{\"fields\":{\"title\":\"v1\",\"keep\":true}}").status());
            Http.Reply created = http.post("/snapshots/" + doc, null);
            assertEquals(200, created.status(), created.raw());
            String id = created.body().path("id").asText();
            assertEquals(doc, created.body().path("documentId").asText());
            assertTrue(created.body().path("sizeBytes").asInt() > 0);
            assertFalse(created.body().has("state"));
            assertFalse(created.body().path("version").isEmpty());

            assertEquals(200, http.patch("/documents/" + doc, "{\"fields\":{\"title\":\"v2\",\"keep\":null,\"added\":1}}").status());
            Http.Reply second = http.post("/snapshots/" + doc, null);
            String secondId = second.body().path("id").asText();

            Http.Reply latest = http.get("/snapshots/" + doc + "/latest");
            assertEquals(secondId, latest.body().path("id").asText(), latest.raw());
            assertEquals("v2", latest.body().path("state").path("fields").path("title").asText());
            Http.Reply list = http.get("/snapshots/" + doc + "?limit=10");
            assertEquals(2, list.body().path("count").asInt(), list.raw());
            assertEquals(List.of(secondId, id), ids(list.body().get("snapshots")));
            assertEquals(List.of(secondId), ids(http.get("/snapshots/" + doc + "?limit=1").body().get("snapshots")));
            Http.Reply one = http.get("/snapshots/id/" + id);
            assertEquals("v1", one.body().path("state").path("fields").path("title").asText(), one.raw());

            try (WsClient sub = subscribed(doc)) {
                Http.Reply restored = http.post("/snapshots/id/" + id + "/restore", null);
                assertEquals(200, restored.status(), restored.raw());
                assertEquals(3, restored.body().path("changed").asInt());
                assertEquals("v1", delta(sub, "title").asText());
                assertTrue(delta(sub, "keep").asBoolean());
                assertTrue(delta(sub, "added").path("__deleted").asBoolean());
                assertEquals(Json.MAPPER.valueToTree(Map.of("title", "v1", "keep", true)), http.get("/documents/" + doc).body().get("fields"));
                // Restoring what is already there writes nothing.
                assertEquals(0, http.post("/snapshots/id/" + id + "/restore", null).body().path("changed").asInt());
                sub.expectNone("delta", Duration.ofMillis(300));
            }

            assertEquals(200, http.delete("/snapshots/id/" + id).status());
            assertEquals(404, http.get("/snapshots/id/" + id).status());
            assertEquals(404, http.delete("/snapshots/id/" + id).status());
            assertEquals(List.of(secondId), ids(http.get("/snapshots/" + doc).body().get("snapshots")));
        }

        @Test
        void aDocumentShowsItsCounterAndSetValues() {
            String doc = doc();
            try (WsClient c = subscribed(doc)) {
                ObjectNode batch = Json.object().put("documentId", doc).put("messageId", "m1");
                ArrayNode ops = batch.putArray("deltas");
                ops.addObject().put("type", "counter").put("operation", "increment").put("clientId", "client-a")
                        .put("value", 5).put("documentId", doc);
                ops.addObject().put("type", "set").put("operation", "add").put("clientId", "client-a")
                        .put("value", "red").put("documentId", doc);
                c.send(MessageType.DELTA_BATCH, batch);
                c.await("ack");
            }
            JsonNode read = http.get("/documents/" + doc).body();
            assertEquals(5, read.path("counter").asLong(), read.toString());
            assertEquals(List.of("red"), ids(read.path("set")));
            // No fields to delete: DELETE says so rather than pretending (the counter and set stay).
            Http.Reply delete = http.delete("/documents/" + doc);
            assertEquals(409, delete.status(), delete.raw());
            assertEquals("NOTHING_TO_DELETE", delete.error());
            assertEquals(200, http.get("/documents/" + doc).status());
        }

        static List<String> ids(JsonNode array) {
            List<String> out = new ArrayList<>();
            array.forEach(n -> out.add(n.isObject() ? n.path("id").asText() : n.asText()));
            return out;
        }
    }

    @Nested
    class Memory extends Contract {
        @Override
        Map<String, String> settings() {
            return Map.of();
        }
    }

    @Nested
    class Postgres extends Contract {
        TestDatabase db;

        @Override
        Map<String, String> settings() {
            db = TestDatabase.create();
            return Map.of("synckit.storage.url", db.url());
        }

        @AfterAll
        void dropDatabase() {
            db.close();
        }

        @Test
        void aSnapshotThisServerCannotReadIsNotRestored() throws Exception {
            String doc = doc();
            assertEquals(200, http.patch("/documents/" + doc, "{\"fields\":{\"keep\":1}}").status());
            String id;
            try (var c = db.connect(); var st = c.prepareStatement("INSERT INTO snapshots (document_id, state, version, size_bytes,"
                    + " compressed) VALUES (?, '{\"packed\":\"...\"}', '{}', 16, TRUE) RETURNING id::text")) {
                st.setString(1, doc);
                try (var rs = st.executeQuery()) {
                    rs.next();
                    id = rs.getString(1);
                }
            }
            Http.Reply r = http.post("/snapshots/id/" + id + "/restore", null);
            assertEquals(409, r.status(), r.raw());
            assertEquals("SNAPSHOT_UNREADABLE", r.error());
            assertEquals(1, http.get("/documents/" + doc).body().path("fields").path("keep").asInt(), "nothing was deleted");
        }
    }
}
