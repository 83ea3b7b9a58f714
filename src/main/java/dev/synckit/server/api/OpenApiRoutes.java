package dev.synckit.server.api;

import dev.synckit.server.http.RouteTable;
import io.helidon.http.HeaderNames;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/**
 * {@code GET /openapi}: the OpenAPI 3.1 description of every HTTP route, written by hand beside the code
 * ({@code openapi.yaml}) and checked against {@link RouteTable} by a test, so it cannot drift unnoticed.
 */
final class OpenApiRoutes implements HttpService {
    static final String RESOURCE = "/openapi.yaml";

    private final RouteTable table;
    private final byte[] document;

    OpenApiRoutes(RouteTable table) {
        this.table = table;
        try (InputStream in = OpenApiRoutes.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException(RESOURCE + " is missing from the jar");
            }
            document = in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void routing(HttpRules rules) {
        table.on("/openapi", rules).get("", this::serve);
    }

    private void serve(ServerRequest req, ServerResponse res) {
        res.header(HeaderNames.CONTENT_TYPE, "application/yaml").send(document);
    }
}
