package dev.synckit.server.http;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.helidon.http.HeaderNames;
import io.helidon.webserver.http.ServerResponse;

/** The one way the HTTP routes (health, auth) answer: a JSON object with its content type. */
public final class JsonReply {
    private JsonReply() {
    }

    public static void send(ServerResponse res, ObjectNode body) {
        res.header(HeaderNames.CONTENT_TYPE, "application/json").send(body.toString());
    }
}
