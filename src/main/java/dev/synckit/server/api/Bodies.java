package dev.synckit.server.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.http.HttpFailure;
import dev.synckit.server.protocol.Json;
import io.helidon.http.Status;
import io.helidon.webserver.http.ServerRequest;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;

/** Request bodies of the HTTP API: JSON objects of at most the WebSocket message limit. */
final class Bodies {
    private final int maxBytes;

    Bodies(int maxBytes) {
        this.maxBytes = maxBytes;
    }

    /** The body as a JSON object; 413 past the limit (checked while reading, not trusted from Content-Length). */
    ObjectNode object(ServerRequest req) {
        if (req.headers().contentLength().orElse(0) > maxBytes) {
            throw tooLarge();
        }
        byte[] bytes;
        try (InputStream in = req.content().inputStream()) {
            bytes = in.readNBytes(maxBytes + 1);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (bytes.length > maxBytes) {
            throw tooLarge();
        }
        JsonNode node;
        try {
            node = Json.MAPPER.readTree(bytes);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw HttpFailure.badRequest("The body is not valid JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (!(node instanceof ObjectNode object)) {
            throw HttpFailure.badRequest("The body must be a JSON object");
        }
        return object;
    }

    private HttpFailure tooLarge() {
        return new HttpFailure(Status.REQUEST_ENTITY_TOO_LARGE_413, "MESSAGE_TOO_LARGE",
                "The body is larger than " + maxBytes + " bytes (synckit.limits.max-message-bytes)");
    }
}
