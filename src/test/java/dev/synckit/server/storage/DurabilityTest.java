package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.ChildServer;
import dev.synckit.server.testing.TcpProxy;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Acknowledged writes survive restarts, SIGKILL and database outages; two instances agree. */
class DurabilityTest {

    private static ObjectNode state(WsClient c, String doc, String requestId) {
        c.send(MessageType.SYNC_REQUEST, Json.object().put("id", requestId).put("documentId", doc));
        return c.await("sync_response", r -> requestId.equals(r.text("requestId"))).payload();
    }

    @Test
    void acknowledgedWritesSurviveARestartWithTheirClock() {
        String doc = "restart-doc";
        try (TestDatabase db = TestDatabase.create()) {
            ObjectNode before;
            try (TestServer first = TestServer.start(Map.of("synckit.storage.url", db.url()));
                 WsClient c = WsClient.binary(first.wsUri())) {
                for (int i = 0; i < 20; i++) {
                    c.send(MessageType.DELTA, WsClient.delta("w" + i, doc, "f" + (i % 5), i));
                }
                ObjectNode batch = Json.object().put("documentId", doc).put("messageId", "b1");
                ObjectNode op = batch.putArray("deltas").addObject().put("type", "set").put("field", "title")
                        .put("value", "persisted").put("clientId", "client-x");
                op.putObject("clock").put("client-x", 42);
                c.send(MessageType.DELTA_BATCH, batch);
                c.await("ack", r -> "b1".equals(r.text("messageId")));
                before = state(c, doc, "before");
            }
            try (TestServer second = TestServer.start(Map.of("synckit.storage.url", db.url()));
                 WsClient c = WsClient.binary(second.wsUri())) {
                c.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
                ObjectNode after = c.await("sync_response").payload();
                assertEquals(before.get("state"), after.get("state"));
                assertEquals(before.get("clock"), after.get("clock"));
                assertEquals(42, after.get("clock").get("client-x").asLong());
                assertEquals(19, after.get("state").get("f4").asInt());
            }
        }
    }

    @Test
    void theClockOfADocumentThatManyClientsWroteStaysBounded() throws Exception {
        String doc = "many-clients-doc";
        int clients = 40;
        try (TestDatabase db = TestDatabase.create();
             TestServer server = TestServer.start(Map.of("synckit.storage.url", db.url()));
             WsClient c = WsClient.binary(server.wsUri())) {
            for (int k = 0; k < clients; k++) {
                // Each write from a client never seen before, its own counter at 1 (or, now and then, far ahead).
                ObjectNode batch = Json.object().put("documentId", doc).put("messageId", "m" + k);
                ObjectNode op = batch.putArray("deltas").addObject().put("type", "set").put("field", "f")
                        .put("value", k).put("clientId", "client-" + k);
                op.putObject("clock").put("client-" + k, k % 10 == 9 ? 1000L + k : 1L);
                c.send(MessageType.DELTA_BATCH, batch);
                String id = "m" + k;
                c.await("ack", r -> id.equals(r.text("messageId")));
            }
            JsonNode clock = state(c, doc, "s").get("clock");
            assertTrue(clock.size() <= 8, "the clock grew to " + clock.size() + " keys: " + clock);
            assertEquals(1039, clock.get("client-39").asLong(), "the maximum is kept: " + clock);
            try (Connection sql = db.connect()) {
                assertTrue(scalar(sql, "SELECT count(*) FROM vector_clocks WHERE document_id = '" + doc + "'") <= 8);
            }
        }
    }

    @Test
    void repliesKeepTheOrderOfTheMessagesWhileWritesCommit() {
        // Writes to one document are pipelined into group commits; that must not reorder what the client
        // hears back, nor let a read overtake the writes sent before it.
        try (TestDatabase db = TestDatabase.create();
             TestServer server = TestServer.start(Map.of("synckit.storage.url", db.url()));
             WsClient c = WsClient.binary(server.wsUri())) {
            List<String> sent = new java.util.ArrayList<>();
            for (int i = 0; i < 40; i++) {
                c.send(MessageType.DELTA, WsClient.delta("a" + i, "order-a", "n", i));
                sent.add("a" + i);
            }
            c.send(MessageType.DELTA, WsClient.delta("b0", "order-b", "n", 0));
            sent.add("b0");
            c.send(MessageType.SYNC_REQUEST, Json.object().put("id", "read").put("documentId", "order-a"));
            ObjectNode read = c.await("sync_response", r -> "read".equals(r.text("requestId"))).payload();
            List<String> acks = c.pending().stream().filter(r -> r.type().equals("ack")).map(r -> r.text("messageId")).toList();
            assertEquals(sent, acks, "every ack before the sync_response, in the order of the writes");
            assertEquals(39, read.get("state").get("n").asInt(), "the read saw every write sent before it");
        }
    }

    @Test
    void retriedMessageIsAppliedOnceAcrossARestart() {
        String doc = "retry-doc";
        ObjectNode batch = Json.object().put("documentId", doc).put("messageId", "msg-retry-1");
        batch.putArray("deltas").addObject().put("type", "set").put("field", "count").put("value", 1)
                .put("clientId", "client-r");
        try (TestDatabase db = TestDatabase.create()) {
            try (TestServer first = TestServer.start(Map.of("synckit.storage.url", db.url()));
                 WsClient c = WsClient.binary(first.wsUri())) {
                c.send(MessageType.DELTA_BATCH, batch);
                c.await("ack");
            }
            try (TestServer second = TestServer.start(Map.of("synckit.storage.url", db.url()));
                 WsClient c = WsClient.binary(second.wsUri()); Connection sql = db.connect()) {
                ObjectNode changed = batch.deepCopy();
                ((ObjectNode) changed.get("deltas").get(0)).put("value", 2);
                c.send(MessageType.DELTA_BATCH, changed); // same client id and message id: a retry
                assertEquals("msg-retry-1", c.await("ack").text("messageId"));
                assertEquals(1, state(c, doc, "s").get("state").get("count").asInt());
                assertEquals(1L, scalar(sql, "SELECT count(*) FROM deltas WHERE document_id = '" + doc + "'"));
            }
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void writersGetErrorsNotAcksWhileTheDatabaseIsDownAndRecoverAfter() throws Exception {
        String doc = "outage-doc";
        try (TestDatabase db = TestDatabase.create()) {
            URI address = db.address();
            try (TcpProxy proxy = new TcpProxy(address.getHost(), address.getPort());
                 TestServer server = TestServer.start(Map.of("synckit.storage.url", db.urlVia(proxy.port()),
                         "synckit.storage.connect-timeout-ms", "1000"));
                 WsClient c = WsClient.binary(server.wsUri())) {
                c.send(MessageType.DELTA, WsClient.delta("ok-1", doc, "v", "before"));
                c.await("ack", r -> "ok-1".equals(r.text("messageId")));

                proxy.cut();
                for (int i = 0; i < 3; i++) {
                    c.send(MessageType.DELTA, WsClient.delta("down-" + i, doc, "v", "during-" + i));
                    WsClient.Received error = c.await("error");
                    assertEquals("Delta application failed", error.text("error"));
                }
                c.expectNone("ack", Duration.ofMillis(200));

                proxy.restore();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                boolean acked = false;
                for (int i = 0; !acked && System.nanoTime() < deadline; i++) {
                    String id = "after-" + i;
                    c.send(MessageType.DELTA, WsClient.delta(id, doc, "v", "after"));
                    try {
                        WsClient.Received r = c.await("ack", x -> id.equals(x.text("messageId")));
                        acked = r != null;
                    } catch (AssertionError notYet) {
                        Thread.sleep(200);
                    }
                }
                assertTrue(acked, "writes did not succeed again after the database came back");
                ObjectNode s = state(c, doc, "final");
                assertEquals("after", s.get("state").get("v").asText());
            }
            try (Connection sql = db.connect()) {
                // Nothing of the failed writes reached the database; state and log agree.
                assertEquals(0L, scalar(sql, "SELECT count(*) FROM deltas WHERE value::text LIKE '%during%'"));
                assertEquals("\"after\"", string(sql, "SELECT state->'fields'->'v' FROM documents WHERE id = '" + doc + "'"));
                assertEquals(scalar(sql, "SELECT seq FROM documents WHERE id = '" + doc + "'"),
                        scalar(sql, "SELECT max(seq) FROM deltas WHERE document_id = '" + doc + "'"));
            }
        }
    }

    @Test
    void twoInstancesWritingTheSameFieldsEndIdentical() throws Exception {
        String doc = "shared-doc";
        int writes = 60;
        try (TestDatabase db = TestDatabase.create();
             TestServer a = TestServer.start(Map.of("synckit.storage.url", db.url()));
             TestServer b = TestServer.start(Map.of("synckit.storage.url", db.url()));
             WsClient onA = WsClient.binary(a.wsUri());
             WsClient onB = WsClient.binary(b.wsUri())) {
            CountDownLatch start = new CountDownLatch(1);
            List<Thread> writers = new ArrayList<>();
            for (WsClient c : List.of(onA, onB)) {
                String who = c == onA ? "a" : "b";
                writers.add(Thread.ofVirtual().start(() -> {
                    try {
                        start.await();
                    } catch (InterruptedException e) {
                        return;
                    }
                    for (int i = 0; i < writes; i++) {
                        c.send(MessageType.DELTA, WsClient.delta(who + i, doc, "f" + (i % 3), who + "-" + i));
                    }
                }));
            }
            start.countDown();
            for (Thread t : writers) {
                t.join();
            }
            for (int i = 0; i < writes; i++) {
                String ia = "a" + i;
                String ib = "b" + i;
                onA.await("ack", r -> ia.equals(r.text("messageId")));
                onB.await("ack", r -> ib.equals(r.text("messageId")));
            }
            JsonNode stateA = state(onA, doc, "ra").get("state");
            JsonNode stateB = state(onB, doc, "rb").get("state");
            assertEquals(stateA, stateB, "the two instances' caches disagree");
            try (Connection sql = db.connect()) {
                JsonNode stored = Json.MAPPER.readTree(string(sql, "SELECT state->'fields' FROM documents WHERE id = '" + doc + "'"));
                assertEquals(stateA, stored, "the cache disagrees with PostgreSQL");
                assertEquals(2L * writes, scalar(sql, "SELECT seq FROM documents WHERE id = '" + doc + "'"));
                assertEquals(2L * writes, scalar(sql, "SELECT count(DISTINCT seq) FROM deltas WHERE document_id = '" + doc + "'"));
            }
        }
    }

    @Test
    void aSigkilledServerLosesNoAcknowledgedWrite() throws Exception {
        String doc = "crash-doc";
        int writes = 300;
        try (TestDatabase db = TestDatabase.create()) {
            ChildServer child = ChildServer.start(Map.of("DATABASE_URL", db.url()));
            Process process = child.process();
            try {
                List<Integer> acked = new ArrayList<>();
                try (WsClient c = WsClient.binary(child.wsUri())) {
                    for (int i = 0; i < writes; i++) {
                        c.send(MessageType.DELTA, WsClient.delta("w" + i, doc, "f" + i, i));
                    }
                    for (int i = 0; i < writes; i++) {
                        String id = "w" + i;
                        c.await("ack", r -> id.equals(r.text("messageId")));
                        acked.add(i);
                    }
                    process.destroyForcibly(); // SIGKILL, right after the last ack arrived
                    assertTrue(process.waitFor(10, TimeUnit.SECONDS));
                }
                try (TestServer after = TestServer.start(Map.of("synckit.storage.url", db.url()));
                     WsClient c = WsClient.binary(after.wsUri())) {
                    JsonNode state = state(c, doc, "after-crash").get("state");
                    for (int i : acked) {
                        assertEquals(i, state.path("f" + i).asInt(-1), "acknowledged write f" + i + " was lost");
                    }
                    assertEquals(writes, acked.size());
                }
            } finally {
                child.close();
            }
        }
    }

    private static long scalar(Connection c, String sql) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private static String string(Connection c, String sql) throws Exception {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }
}
