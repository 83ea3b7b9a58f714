package dev.synckit.server.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import io.helidon.http.Method;
import io.helidon.webserver.http.Handler;
import io.helidon.webserver.http.HttpRules;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Every HTTP route this server registers, as it registers it: services add routes through {@link #on}, which
 * both hands them to Helidon and records them, so the OpenAPI description can be checked against what is
 * really served. Handlers may throw {@link HttpFailure}; anything else unexpected becomes a logged 500.
 */
public final class RouteTable {
    private static final Logger LOG = Logger.getLogger(RouteTable.class.getName());

    /** One registered route: method and path pattern in OpenAPI form ({@code /documents/{id}}). */
    public record Route(String method, String path) {}

    private final List<Route> routes = new CopyOnWriteArrayList<>();

    /** Routes of a service mounted at {@code prefix} ("" for the root). */
    public Recorder on(String prefix, HttpRules rules) {
        return new Recorder(prefix, rules);
    }

    /** Records a route Helidon serves without our rules (observers, WebSocket upgrades). */
    public void served(Method method, String path) {
        routes.add(new Route(method.text(), path));
    }

    public List<Route> routes() {
        return List.copyOf(routes);
    }

    public final class Recorder {
        private final String prefix;
        private final HttpRules rules;

        private Recorder(String prefix, HttpRules rules) {
            this.prefix = prefix;
            this.rules = rules;
        }

        public Recorder get(String path, Handler handler) {
            return route(Method.GET, path, handler);
        }

        public Recorder post(String path, Handler handler) {
            return route(Method.POST, path, handler);
        }

        public Recorder patch(String path, Handler handler) {
            return route(Method.PATCH, path, handler);
        }

        public Recorder delete(String path, Handler handler) {
            return route(Method.DELETE, path, handler);
        }

        private Recorder route(Method method, String path, Handler handler) {
            String full = prefix + path;
            routes.add(new Route(method.text(), full.isEmpty() ? "/" : full));
            rules.route(method, path, (req, res) -> {
                try {
                    handler.handle(req, res);
                } catch (HttpFailure f) {
                    error(res, f.status(), f.code(), f.getMessage());
                } catch (dev.synckit.server.storage.StorageException e) {
                    LOG.log(Level.WARNING, method.text() + " " + full + ": storage failed", e);
                    error(res, io.helidon.http.Status.SERVICE_UNAVAILABLE_503, "STORAGE_UNAVAILABLE",
                            "Storage is not reachable: " + e.getMessage() + ". Retry later");
                } catch (Exception e) {
                    LOG.log(Level.WARNING, method.text() + " " + full + " failed", e);
                    error(res, io.helidon.http.Status.INTERNAL_SERVER_ERROR_500, "INTERNAL", "Internal error: " + e);
                }
            });
            return this;
        }
    }

    private static void error(io.helidon.webserver.http.ServerResponse res, io.helidon.http.Status status, String code,
                              String message) {
        if (res.isSent()) {
            return;
        }
        ObjectNode body = Json.object().put("error", message).put("code", code);
        res.status(status);
        JsonReply.send(res, body);
    }
}
