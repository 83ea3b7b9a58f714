package dev.synckit.server.storage;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.Await;
import dev.synckit.server.testing.TestDatabase;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a client hears while its writes wait for PostgreSQL: made to wait by holding the document's row lock
 * from a separate connection, the way a slow or stuck instance would.
 */
class CommitOrderTest {

    /** Holds the row lock of {@code doc} until the returned connection rolls back. */
    private static Connection lockRow(TestDatabase db, String doc) throws Exception {
        Connection sql = db.connect();
        sql.setAutoCommit(false);
        try (PreparedStatement st = sql.prepareStatement("SELECT seq FROM documents WHERE id = ? FOR UPDATE")) {
            st.setString(1, doc);
            st.executeQuery().close();
        }
        return sql;
    }

    @Test
    void aBatchOfOnlyCounterOpsIsAcknowledgedAfterTheWriteBeforeIt() throws Exception {
        String doc = "ack-order";
        try (TestDatabase db = TestDatabase.create();
             TestServer server = TestServer.start(Map.of("synckit.storage.url", db.url()));
             WsClient c = WsClient.binary(server.wsUri())) {
            c.send(MessageType.DELTA, WsClient.delta("w0", doc, "n", 0));
            c.await("ack", r -> "w0".equals(r.text("messageId")));
            try (Connection lock = lockRow(db, doc)) {
                c.send(MessageType.DELTA, WsClient.delta("w1", doc, "n", 1)); // waits for the row lock
                ObjectNode counter = Json.object().put("documentId", doc).put("messageId", "c1");
                counter.putArray("deltas").addObject().put("type", "counter").put("operation", "increment")
                        .put("clientId", "client-c").put("value", 1);
                c.send(MessageType.DELTA_BATCH, counter);
                c.expectNone("ack", Duration.ofMillis(500));
                lock.rollback();
            }
            assertEquals(List.of("w1", "c1"), List.of(c.await("ack").text("messageId"), c.await("ack").text("messageId")),
                    "acks in the order of the messages");
        }
    }

    @Test
    void aCommitThatFailsAfterItsClientLeftIsSettledCleanly() throws Exception {
        String doc = "left-before-failure";
        List<LogRecord> records = new CopyOnWriteArrayList<>();
        Handler capture = new Handler() {
            @Override
            public void publish(LogRecord r) {
                records.add(r);
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        Logger root = Logger.getLogger("dev.synckit.server");
        root.addHandler(capture);
        try (TestDatabase db = TestDatabase.create();
             TestServer server = TestServer.start(Map.of("synckit.storage.url", db.url()))) {
            try (WsClient c = WsClient.binary(server.wsUri())) {
                c.send(MessageType.DELTA, WsClient.delta("w0", doc, "n", 0));
                c.await("ack");
            }
            Await.waitFor("the first client to leave", Duration.ofSeconds(5),
                    () -> server.app().gateway().connectionCount() == 0);
            try (Connection lock = lockRow(db, doc)) {
                try (WsClient c = WsClient.binary(server.wsUri())) {
                    // PostgreSQL's jsonb refuses U+0000, so this commit fails once it gets the row lock.
                    c.send(MessageType.DELTA, WsClient.delta("bad", doc, "n", "nul\u0000"));
                    Thread.sleep(200); // the write is queued behind the lock
                }
                Await.waitFor("the writer to leave", Duration.ofSeconds(5),
                        () -> server.app().gateway().connectionCount() == 0);
                lock.rollback();
            }
            Await.waitFor("the failed write to be reported", Duration.ofSeconds(10), () -> records.stream()
                    .anyMatch(r -> String.valueOf(r.getMessage()).contains("failed, not acknowledged")));
            Await.waitFor("nothing left in flight", Duration.ofSeconds(5),
                    () -> server.app().documents().uncommitted() == 0);
            assertTrue(records.stream().noneMatch(r -> r.getLevel().intValue() >= Level.SEVERE.intValue()),
                    () -> "settling raised: " + records.stream().filter(r -> r.getLevel() == Level.SEVERE)
                            .map(r -> r.getMessage() + " " + r.getThrown()).toList());
            try (WsClient c = WsClient.binary(server.wsUri())) {
                c.send(MessageType.DELTA, WsClient.delta("w2", doc, "n", 2));
                c.await("ack", r -> "w2".equals(r.text("messageId")));
            }
        } finally {
            root.removeHandler(capture);
        }
    }
}
