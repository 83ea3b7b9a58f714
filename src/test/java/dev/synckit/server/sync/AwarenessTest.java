package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.testing.TestServer;
import dev.synckit.server.testing.WsClient;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Presence over real connections: subscribe, updates, leaves, stale sweep, disconnect. */
class AwarenessTest {
    private static TestServer server;

    @BeforeAll
    static void start() {
        server = TestServer.start(Map.of("synckit.sync.awareness-timeout-ms", "600"));
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    private static ObjectNode update(String doc, String clientId, ObjectNode state, long clock) {
        ObjectNode u = Json.object().put("documentId", doc).put("clientId", clientId).put("clock", clock);
        u.set("state", state == null ? Json.object().nullNode() : state);
        return u;
    }

    @Test
    void updatesReachSubscribersIncludingSenderAndLateJoinersGetState() {
        String doc = "presence-" + System.nanoTime();
        try (WsClient alice = WsClient.binary(server.wsUri()); WsClient bob = WsClient.json(server.wsUri())) {
            alice.send(MessageType.AWARENESS_SUBSCRIBE, Json.object().put("documentId", doc));
            assertEquals(0, alice.await("awareness_state").payload().get("states").size());
            bob.send(MessageType.AWARENESS_SUBSCRIBE, Json.object().put("documentId", doc));
            bob.await("awareness_state");

            ObjectNode state = Json.object();
            state.putObject("cursor").put("x", 1);
            alice.send(MessageType.AWARENESS_UPDATE, update(doc, "client-alice", state, 1));
            for (WsClient c : new WsClient[] {alice, bob}) {
                WsClient.Received u = c.await("awareness_update", r -> "client-alice".equals(r.text("clientId")));
                assertEquals(1, u.payload().get("state").get("cursor").get("x").asInt());
                assertEquals(1, u.payload().get("clock").asLong());
            }

            try (WsClient carol = WsClient.binary(server.wsUri())) {
                carol.send(MessageType.AWARENESS_SUBSCRIBE, Json.object().put("documentId", doc));
                var states = carol.await("awareness_state").payload().get("states");
                assertEquals(1, states.size());
                assertEquals("client-alice", states.get(0).get("clientId").asText());
            }

            alice.send(MessageType.AWARENESS_UPDATE, update(doc, "client-alice", null, 2));
            WsClient.Received leave = bob.await("awareness_update", r -> r.payload().get("state").isNull());
            assertEquals("client-alice", leave.text("clientId"));
        }
    }

    @Test
    void documentSubscribersAlsoGetPresenceAndStaleOrClosedOwnersLeave() {
        String doc = "presence-" + System.nanoTime();
        try (WsClient watcher = WsClient.binary(server.wsUri())) {
            // Only a document subscription, as an SDK client has after a reconnect.
            watcher.send(MessageType.SUBSCRIBE, Json.object().put("documentId", doc));
            watcher.await("sync_response");
            try (WsClient owner = WsClient.binary(server.wsUri())) {
                owner.send(MessageType.AWARENESS_UPDATE, update(doc, "client-owner", Json.object().put("name", "O"), 1));
                watcher.await("awareness_update", r -> "client-owner".equals(r.text("clientId")) && r.payload().get("state").isObject());
            }
            // The owner's connection closed: its presence is withdrawn.
            WsClient.Received gone = watcher.await("awareness_update",
                    r -> "client-owner".equals(r.text("clientId")) && r.payload().get("state").isNull());
            assertTrue(gone.payload().get("clock").asLong() > 1);

            try (WsClient idle = WsClient.binary(server.wsUri())) {
                idle.send(MessageType.AWARENESS_UPDATE, update(doc, "client-idle", Json.object().put("name", "I"), 1));
                watcher.await("awareness_update", r -> "client-idle".equals(r.text("clientId")) && r.payload().get("state").isObject());
                // No refresh within the 600 ms timeout: the sweep announces a leave while the socket is still open.
                watcher.await("awareness_update", r -> "client-idle".equals(r.text("clientId")) && r.payload().get("state").isNull());
                assertTrue(!idle.isClosed());
            }
        }
    }
}
