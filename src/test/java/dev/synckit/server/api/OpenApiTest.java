package dev.synckit.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.synckit.server.http.RouteTable;
import dev.synckit.server.testing.TestServer;
import org.junit.jupiter.api.Test;

import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code /openapi} describes exactly the routes the server registers, with every route mounted. */
class OpenApiTest {
    private static final Set<String> METHODS = Set.of("get", "put", "post", "delete", "patch", "head", "options");

    @Test
    void theServedDescriptionMatchesTheRegisteredRoutes() throws Exception {
        // dev-login and a JWT secret mount /auth/* too, so every route that can exist is registered.
        try (TestServer server = TestServer.start(Map.of("synckit.auth.jwt-secret", "openapi-test-secret-of-forty-chars-xyz1",
                "synckit.auth.dev-login", "true"));
             HttpClient client = HttpClient.newHttpClient()) {
            HttpResponse<String> r = client.send(HttpRequest.newBuilder(server.httpUri("/openapi")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode());
            assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/yaml"));
            JsonNode doc = new YAMLMapper().readTree(r.body());
            assertEquals("3.1.0", doc.path("openapi").asText());

            Set<String> described = new TreeSet<>();
            for (Iterator<Map.Entry<String, JsonNode>> paths = doc.path("paths").fields(); paths.hasNext(); ) {
                Map.Entry<String, JsonNode> path = paths.next();
                path.getValue().fieldNames().forEachRemaining(m -> {
                    if (METHODS.contains(m)) {
                        described.add(m.toUpperCase() + " " + path.getKey());
                    }
                });
            }
            Set<String> registered = new TreeSet<>();
            for (RouteTable.Route route : server.app().routes().routes()) {
                registered.add(route.method() + " " + route.path());
            }
            assertEquals(registered, described, "routes registered vs described in openapi.yaml");
            // Every $ref points at something defined.
            String text = r.body();
            java.util.regex.Matcher refs = java.util.regex.Pattern.compile("\\$ref: \"#/([^\"]+)\"").matcher(text);
            while (refs.find()) {
                JsonNode target = doc;
                for (String part : refs.group(1).split("/")) {
                    target = target.path(part);
                }
                assertTrue(!target.isMissingNode(), "dangling $ref #/" + refs.group(1));
            }
            // And the routes described are really served (a 404 from Helidon's router has no JSON body).
            HttpResponse<String> doc404 = client.send(HttpRequest.newBuilder(server.httpUri("/documents/nothing-here")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(404, doc404.statusCode());
            assertTrue(doc404.body().contains("\"code\":\"NOT_FOUND\""), doc404.body());
        }
    }
}
