package dev.synckit.server.health;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.sync.Documents;
import dev.synckit.server.ws.Gateway;
import io.helidon.http.HeaderNames;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import java.lang.management.ManagementFactory;
import java.time.Instant;
import java.time.temporal.ChronoUnit;

/** {@code GET /health} and {@code GET /} in the upstream TS shape (PROTOCOL.md §9.1, §9.2). */
public final class HealthRoutes implements HttpService {
    public static final String VERSION = "0.3.0";

    private final Gateway gateway;
    private final Documents documents;

    public HealthRoutes(Gateway gateway, Documents documents) {
        this.gateway = gateway;
        this.documents = documents;
    }

    @Override
    public void routing(HttpRules rules) {
        rules.get("/health", this::health).get("/", this::root);
    }

    private void health(ServerRequest req, ServerResponse res) {
        ObjectNode body = Json.object()
                .put("status", "healthy")
                .put("timestamp", Instant.now().truncatedTo(ChronoUnit.MILLIS).toString())
                .put("version", VERSION)
                .put("uptime", ManagementFactory.getRuntimeMXBean().getUptime() / 1000.0);
        body.putObject("connections")
                .put("totalConnections", gateway.connectionCount())
                .put("totalUsers", gateway.userCount())
                .put("totalClients", 0);
        var summaries = documents.summaries();
        ObjectNode docs = body.putObject("documents").put("totalDocuments", summaries.size());
        ArrayNode list = docs.putArray("documents");
        summaries.forEach(s -> list.addObject().put("id", s.id()).put("subscribers", s.subscribers())
                .put("lastModified", s.lastModified()));
        send(res, body);
    }

    private void root(ServerRequest req, ServerResponse res) {
        ObjectNode body = Json.object().put("name", "SyncKit Server").put("version", VERSION)
                .put("description", "Real-time sync server for local-first apps (Java, Helidon SE)");
        body.putObject("endpoints").put("health", "/health").put("ws", "/ws").put("auth", "/auth");
        body.putObject("features").put("websocket", "SyncKit binary and JSON protocol")
                .put("auth", "JWT (HS256) and API keys").put("sync", "LWW fields with vector clocks")
                .put("crdt", "text states relayed and stored");
        send(res, body);
    }

    public static void send(ServerResponse res, ObjectNode body) {
        res.header(HeaderNames.CONTENT_TYPE, "application/json").send(body.toString());
    }
}
