package dev.synckit.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.ChildServer;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestRedis;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** HTTP writes in a cluster (PostgreSQL + Redis, document ownership) and across a crash. */
class ApiClusterTest {

    private static WsClient subscribed(TestServer server, String doc) {
        WsClient c = WsClient.binary(server.wsUri());
        c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
        c.await("sync_response", r -> doc.equals(r.text("documentId")));
        return c;
    }

    private static JsonNode delta(WsClient c, String field) {
        return c.await("delta", r -> field.equals(r.text("field"))).payload().get("value");
    }

    @Test
    void patchesAndRestoresOnEitherInstanceReachSubscribersOfBoth() {
        String prefix = TestRedis.freshPrefix();
        String doc = "cluster-api-doc";
        try (TestDatabase db = TestDatabase.create();
             TestServer a = TestServer.start(TestRedis.node(db, prefix));
             TestServer b = TestServer.start(TestRedis.node(db, prefix));
             WsClient onA = subscribed(a, doc);
             WsClient onB = subscribed(b, doc)) {
            Http httpA = new Http(a::httpUri);
            Http httpB = new Http(b::httpUri);
            // Alternate the instance each PATCH goes to: whichever owns the document, the other forwards.
            for (int i = 0; i < 20; i++) {
                Http.Reply r = (i % 2 == 0 ? httpA : httpB).patch("/documents/" + doc, "{\"fields\":{\"n\":" + i + ",\"f" + i + "\":true}}");
                assertEquals(200, r.status(), r.raw());
            }
            for (WsClient c : List.of(onA, onB)) {
                for (int i = 0; i < 20; i++) {
                    assertTrue(delta(c, "f" + i).asBoolean());
                }
            }
            assertEquals(19, httpB.get("/documents/" + doc).body().path("fields").path("n").asInt());
            assertEquals(21, httpA.get("/documents/" + doc).body().path("fields").size());

            String snapshot = httpA.post("/snapshots/" + doc, null).body().path("id").asText();
            assertEquals(200, httpB.patch("/documents/" + doc, "{\"fields\":{\"n\":100,\"late\":1}}").status());
            delta(onA, "late");
            delta(onB, "late");
            Http.Reply restored = httpB.post("/snapshots/id/" + snapshot + "/restore", null);
            assertEquals(200, restored.status(), restored.raw());
            for (WsClient c : List.of(onA, onB)) {
                assertTrue(delta(c, "late").path("__deleted").asBoolean(), "restore reached " + c);
                c.await("delta", r -> "n".equals(r.text("field")) && r.payload().path("value").asInt() == 19);
            }
            assertEquals(19, httpA.get("/documents/" + doc).body().path("fields").path("n").asInt());
        }
    }

    @Test
    void aSigkillRightAfter200KeepsEveryWrite() throws Exception {
        String doc = "api-crash-doc";
        int writes = 60;
        try (TestDatabase db = TestDatabase.create()) {
            ChildServer child = ChildServer.start(Map.of("DATABASE_URL", db.url()));
            List<Integer> ok = new ArrayList<>();
            try {
                Http http = new Http(child::httpUri);
                for (int i = 0; i < writes; i++) {
                    assertEquals(200, http.patch("/documents/" + doc, "{\"fields\":{\"f" + i + "\":" + i + "}}").status());
                    ok.add(i);
                }
                child.process().destroyForcibly(); // SIGKILL, right after the last 200
                assertTrue(child.process().waitFor(10, TimeUnit.SECONDS));
            } finally {
                child.close();
            }
            try (TestServer after = TestServer.start(Map.of("synckit.storage.url", db.url()))) {
                JsonNode fields = new Http(after::httpUri).get("/documents/" + doc).body().path("fields");
                for (int i : ok) {
                    assertEquals(i, fields.path("f" + i).asInt(-1), "write f" + i + " answered 200 was lost");
                }
                assertEquals(writes, ok.size());
            }
        }
    }
}
