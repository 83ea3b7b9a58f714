package dev.synckit.server.api;

import dev.synckit.server.auth.Authenticator;
import dev.synckit.server.cluster.Writes;
import dev.synckit.server.http.HttpFailure;
import dev.synckit.server.http.RouteTable;
import dev.synckit.server.protocol.Codec;
import dev.synckit.server.protocol.ProtocolException;
import dev.synckit.server.storage.StorageAdapter;
import dev.synckit.server.sync.Documents;
import io.helidon.http.Status;
import io.helidon.webserver.http.HttpRouting;
import io.helidon.webserver.http.ServerRequest;

import java.time.Duration;
import java.util.function.Consumer;

/**
 * The server API for backends (documents, snapshots) and its OpenAPI description. It shares the sync core with
 * the WebSocket gateway but none of its code: an HTTP write is a {@link Writes} call like a client's.
 */
public final class HttpApi {
    /**
     * How long a request waits for its write to commit. Longer than any retry of a forwarded write in a cluster
     * (three leases plus a forward timeout by default), so a 504 means the store itself is stuck.
     */
    static final Duration WRITE_TIMEOUT = Duration.ofSeconds(30);

    private HttpApi() {
    }

    /** The document id in a path parameter, held to the WebSocket's rule (PROTOCOL.md §8.1), or 400. */
    static String documentId(ServerRequest req, String parameter) {
        try {
            return Codec.validDocumentId(req.path().pathParameters().get(parameter));
        } catch (ProtocolException e) {
            throw new HttpFailure(Status.BAD_REQUEST_400, e.code(), e.getMessage()
                    + ": document ids are 1-255 characters of letters, digits, '_', ':' and '-'");
        }
    }

    /**
     * @param deleted told the id of each document a {@code DELETE /documents/{id}} emptied, after its write
     *                committed (the webhooks' {@code document.deleted})
     */
    public static void register(HttpRouting.Builder routing, RouteTable table, StorageAdapter storage, Documents documents,
                                Writes writes, Authenticator authenticator, int maxBodyBytes, Consumer<String> deleted) {
        Callers callers = new Callers(authenticator);
        ServerWrites serverWrites = new ServerWrites(writes, storage, WRITE_TIMEOUT);
        routing.register("/documents", new DocumentRoutes(table, storage, documents, callers, new Bodies(maxBodyBytes), serverWrites,
                        deleted))
                .register("/snapshots", new SnapshotRoutes(table, storage, callers, serverWrites))
                .register("/openapi", new OpenApiRoutes(table));
    }
}
