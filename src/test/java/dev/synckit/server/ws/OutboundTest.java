package dev.synckit.server.ws;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.Map;

import static dev.synckit.server.testing.Await.waitFor;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Large documents, the document size cap, and the server-wide bound on what connections have queued. */
class OutboundTest {

    private static void write(WsClient c, String id, String doc, String field, Object value) {
        c.send(MessageType.DELTA, WsClient.delta(id, doc, field, value));
        c.await("ack", r -> id.equals(r.text("messageId")));
    }

    @Test
    void aDocumentLargerThanTheOutboundQueueCanStillBeOpened() {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-message-bytes", "16384",
                "synckit.limits.outbound-queue-bytes", "32768"));
             WsClient writer = WsClient.binary(s.wsUri())) {
            String doc = "big-doc";
            for (int i = 0; i < 10; i++) {
                write(writer, "w" + i, doc, "f" + i, "x".repeat(10_000)); // 100 KB in all, 3× the queue bound
            }
            for (int round = 0; round < 2; round++) { // and again on reconnecting
                try (WsClient reader = WsClient.binary(s.wsUri())) {
                    reader.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
                    ObjectNode state = (ObjectNode) reader.await("sync_response").payload().get("state");
                    assertEquals(10, state.size());
                    assertFalse(reader.isClosed());
                }
            }
        }
    }

    @Test
    void writesThatWouldGrowADocumentPastTheCapAreRefusedWithAClearError() {
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-document-bytes", "50000"));
             WsClient c = WsClient.binary(s.wsUri())) {
            String doc = "capped";
            String value = "y".repeat(10_000);
            for (int i = 0; i < 4; i++) {
                write(c, "w" + i, doc, "f" + i, value);
            }
            c.send(MessageType.DELTA, WsClient.delta("over", doc, "f4", value));
            WsClient.Received error = c.await("error");
            assertEquals("DOCUMENT_TOO_LARGE", error.payload().path("details").path("code").asText(), error.payload().toString());
            assertEquals(doc, error.payload().path("details").path("documentId").asText());
            c.expectNone("ack", Duration.ofMillis(300));

            ObjectNode delete = Json.object().put("id", "del").put("documentId", doc);
            delete.putObject("delta").putObject("f0").put("__deleted", true);
            delete.putObject("vectorClock");
            c.send(MessageType.DELTA, delete);
            c.await("ack", r -> "del".equals(r.text("messageId"))); // shrinking is always allowed
            write(c, "again", doc, "f4", value);

            c.send(MessageType.SYNC_REQUEST, Json.object().put("id", "s").put("documentId", doc));
            ObjectNode state = (ObjectNode) c.await("sync_response").payload().get("state");
            assertEquals(4, state.size());
            assertTrue(state.has("f4") && !state.has("f0"));
        }
    }

    @Test
    void pastTheServerWideBudgetTheClientFurthestBehindIsClosedFirst() {
        // Each queue alone may hold 32 MiB, all together 24 MiB: only the server-wide budget can close anyone.
        try (TestServer s = TestServer.start(Map.of("synckit.limits.max-message-bytes", "65536",
                "synckit.limits.outbound-queue-bytes", String.valueOf(32 << 20),
                "synckit.limits.outbound-total-bytes", String.valueOf(24 << 20),
                "synckit.limits.max-messages-per-minute", "1000000"));
             WsClient writer = WsClient.binary(s.wsUri());
             WsClient fast = WsClient.binary(s.wsUri());
             WsClient furthest = WsClient.silent(s.wsUri());
             WsClient behind = WsClient.silent(s.wsUri())) {
            for (String doc : new String[] {"d1", "d2"}) {
                furthest.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
            }
            behind.send(MessageType.SUBSCRIBE, Json.object().put("documentId", "d1"));
            fast.send(MessageType.SUBSCRIBE, Json.object().put("documentId", "d1"));
            fast.await("sync_response");
            waitFor("the silent clients to subscribe", Duration.ofSeconds(5),
                    () -> s.app().documents().subscribers("d1").size() == 3 && s.app().documents().subscribers("d2").size() == 1);
            // (the writer joins both documents by writing to them: 4 and 2 from here on)

            String value = "z".repeat(16 * 1024);
            // 1800 writes: the client on both documents is sent ~29 MB, under its own 32 MiB bound.
            for (int i = 0; i < 1800 && s.app().gateway().connectionCount() == 4; i++) {
                String doc = i % 2 == 0 ? "d1" : "d2";
                ObjectNode d = WsClient.delta("w" + i, doc, "f" + i, value);
                writer.send(MessageType.DELTA, d);
                String id = "w" + i;
                writer.await("ack", r -> id.equals(r.text("messageId")));
                if (i % 100 == 0) {
                    fast.pending(); // keeps reading: it is never behind
                }
            }
            waitFor("the client furthest behind to be closed", Duration.ofSeconds(15),
                    () -> s.app().gateway().connectionCount() == 3);
            // The closed connection leaves its documents just after its socket closes.
            waitFor("the closed client to leave its documents", Duration.ofSeconds(5),
                    () -> s.app().documents().subscribers("d1").size() + s.app().documents().subscribers("d2").size() == 4);
            // The writer is subscribed to both documents by writing to them.
            assertEquals(3, s.app().documents().subscribers("d1").size(), "the other silent client and the fast one stay");
            assertEquals(1, s.app().documents().subscribers("d2").size(), "the one on both documents went");
            write(writer, "after", "d1", "last", "yes");
            fast.await("delta", r -> "last".equals(r.text("field")));
        }
    }
}
