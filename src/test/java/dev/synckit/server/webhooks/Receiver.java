package dev.synckit.server.webhooks;

import com.fasterxml.jackson.databind.JsonNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.synckit.server.protocol.Json;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

/**
 * A webhook receiver as a user would write one (JDK HTTP server): it checks the signature over the raw body
 * before anything else, and answers {@link #status} (2xx: the delivery is recorded). It can also be stopped and
 * started again on the same port, a receiver that is down.
 */
final class Receiver implements AutoCloseable {
    /** A delivery the receiver accepted. */
    record Seen(String event, String documentId, long seq, String deliveryId, String deliveryHeader, String eventHeader,
                JsonNode body) {}

    private final byte[] secret;
    private final int port;
    private volatile HttpServer server;
    final List<Seen> seen = new CopyOnWriteArrayList<>();
    final AtomicInteger status = new AtomicInteger(204);
    /** Correctly signed requests answered with something else than 2xx. */
    final AtomicInteger refused = new AtomicInteger();
    final AtomicInteger badSignatures = new AtomicInteger();

    Receiver(String secret) throws IOException {
        this.secret = secret.getBytes(StandardCharsets.UTF_8);
        this.server = listen(0);
        this.port = server.getAddress().getPort();
    }

    private HttpServer listen(int on) throws IOException {
        HttpServer s = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), on), 0);
        s.setExecutor(Executors.newVirtualThreadPerTaskExecutor());
        s.createContext("/hook", this::handle);
        s.start();
        return s;
    }

    URI url() {
        return URI.create("http://127.0.0.1:" + port + "/hook");
    }

    private void handle(HttpExchange exchange) throws IOException {
        try (exchange) {
            byte[] raw = exchange.getRequestBody().readAllBytes();
            String signature = exchange.getRequestHeaders().getFirst("X-SyncKit-Signature");
            byte[] expected = Webhooks.sign(secret, raw).getBytes(StandardCharsets.US_ASCII);
            if (signature == null || !MessageDigest.isEqual(expected, signature.getBytes(StandardCharsets.US_ASCII))) {
                badSignatures.incrementAndGet();
                exchange.sendResponseHeaders(401, -1);
                return;
            }
            int answer = status.get();
            if (answer < 200 || answer > 299) {
                refused.incrementAndGet();
                exchange.sendResponseHeaders(answer, -1);
                return;
            }
            JsonNode body = Json.MAPPER.readTree(raw);
            seen.add(new Seen(body.path("event").asText(), body.path("documentId").asText(), body.path("seq").asLong(-1),
                    body.path("deliveryId").asText(), exchange.getRequestHeaders().getFirst("X-SyncKit-Delivery"),
                    exchange.getRequestHeaders().getFirst("X-SyncKit-Event"), body));
            exchange.sendResponseHeaders(answer, -1);
        }
    }

    /** Accepted deliveries of one document, in arrival order. */
    List<Seen> of(String documentId) {
        return seen.stream().filter(s -> s.documentId().equals(documentId)).toList();
    }

    /** How often each seq of the document was accepted. */
    Map<Long, Long> seqCounts(String documentId) {
        return of(documentId).stream().collect(Collectors.groupingBy(Seen::seq, Collectors.counting()));
    }

    /** Down: connections are refused. */
    void stop() {
        server.stop(0);
    }

    /** Up again on the same port. */
    void restart() throws IOException {
        server = listen(port);
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
