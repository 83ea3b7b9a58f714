package dev.synckit.server.status;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.auth.Authenticator;
import dev.synckit.server.auth.Principal;
import dev.synckit.server.http.JsonReply;
import dev.synckit.server.http.RouteTable;
import dev.synckit.server.protocol.Json;
import io.helidon.http.HeaderNames;
import io.helidon.http.Status;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * {@code GET /status}: one static page (no data in it, so it is served to anyone); {@code GET /status/json}:
 * what the page polls every second, every live instance's latest snapshot. With auth required the JSON is
 * for admins only (API key or admin JWT, as for {@code /health}'s document list). Document ids can be a
 * document's only secret when auth is off, so, as in {@code /health}, only admins see them; everyone else
 * gets a short hash ({@code ref}) in their place.
 */
public final class StatusRoutes implements HttpService {
    private final InstanceStats stats;
    private final Authenticator authenticator;
    private final byte[] page;

    private final RouteTable table;

    public StatusRoutes(RouteTable table, InstanceStats stats, Authenticator authenticator) {
        this.table = table;
        this.stats = stats;
        this.authenticator = authenticator;
        try (InputStream in = StatusRoutes.class.getResourceAsStream("/status/index.html")) {
            if (in == null) {
                throw new IllegalStateException("status/index.html missing from the classpath");
            }
            this.page = in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void routing(HttpRules rules) {
        table.on("/status", rules).get("", this::page).get("/json", this::json);
    }

    private void page(ServerRequest req, ServerResponse res) {
        res.header(HeaderNames.CONTENT_TYPE, "text/html; charset=utf-8")
                .header(HeaderNames.CACHE_CONTROL, "no-store")
                // Everything the page needs is inline or same-origin; nothing else may load or frame it.
                .header(HeaderNames.create("Content-Security-Policy"), "default-src 'none'; script-src 'unsafe-inline'; "
                        + "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'")
                .header(HeaderNames.create("X-Content-Type-Options"), "nosniff")
                .header(HeaderNames.create("Referrer-Policy"), "no-referrer")
                .send(page);
    }

    private void json(ServerRequest req, ServerResponse res) {
        Optional<Principal> caller = authenticator.fromHttpRequest(req);
        boolean admin = caller.map(p -> p.permissions().isAdmin()).orElse(false);
        if (authenticator.required() && !admin) {
            boolean anonymous = caller.isEmpty();
            res.status(anonymous ? Status.UNAUTHORIZED_401 : Status.FORBIDDEN_403);
            res.header(HeaderNames.CACHE_CONTROL, "no-store");
            JsonReply.send(res, Json.object()
                    .put("error", anonymous ? "Admin credentials required (X-API-Key or an admin Bearer token)"
                            : "Admin permission required")
                    .put("code", anonymous ? "AUTH_REQUIRED" : "PERMISSION_DENIED"));
            return;
        }
        stats.watched();
        res.header(HeaderNames.CACHE_CONTROL, "no-store");
        JsonReply.send(res, body(admin));
    }

    ObjectNode body(boolean showIds) {
        long now = System.currentTimeMillis();
        ClusterBoard.Result cluster = stats.cluster();
        ObjectNode self = stats.latest().toJson();
        List<ObjectNode> instances = new ArrayList<>();
        instances.add(self);
        // The copy from Redis of this instance is older than the latest sample: use the latest.
        cluster.snapshots().stream()
                .filter(s -> !stats.instanceId().equals(s.path("instanceId").asText()))
                .sorted(Comparator.comparing(s -> s.path("instanceId").asText()))
                .forEach(instances::add);
        ObjectNode body = Json.object().put("generatedAt", now).put("instanceId", stats.instanceId())
                .put("authRequired", authenticator.required()).put("documentIds", showIds);
        ObjectNode c = body.putObject("cluster").put("redis", stats.clustered()).put("instances", instances.size());
        if (cluster.error() != null) {
            c.put("error", cluster.error());
        }
        ArrayNode list = body.putArray("instances");
        for (ObjectNode instance : instances) {
            ObjectNode copy = instance.deepCopy();
            copy.put("ageMs", Math.max(0, now - copy.path("sampledAt").asLong(now)));
            if (!showIds) {
                hideIds(copy.path("documents"));
            }
            list.add(copy);
        }
        return body;
    }

    private static void hideIds(JsonNode documents) {
        for (JsonNode rows : documents) {
            for (JsonNode row : rows) {
                if (row instanceof ObjectNode o) {
                    o.remove("id");
                }
            }
        }
    }
}
