package dev.synckit.server.ws;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.auth.Principal;
import dev.synckit.server.meters.Meters;
import dev.synckit.server.protocol.Codec;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.Message;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.protocol.ProtocolException;
import dev.synckit.server.storage.StorageException;
import dev.synckit.server.sync.WriteRequest;
import io.helidon.common.buffers.BufferData;
import io.helidon.http.HeaderNames;
import io.helidon.http.Headers;
import io.helidon.http.HttpPrologue;
import io.helidon.websocket.WsListener;
import io.helidon.websocket.WsSession;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The protocol state of one WebSocket connection: admission, framing, authentication, limits and the
 * dispatch of each message (PROTOCOL.md §5–§8). Helidon calls it on the connection's own virtual
 * thread, one frame at a time, so messages of a connection are handled strictly in arrival order.
 */
final class ClientSession implements WsListener {
    private static final Logger LOG = Logger.getLogger(ClientSession.class.getName());

    private final Gateway gateway;
    /** The X-Forwarded-For lines and X-Real-IP of the upgrade; judged in onOpen, where the peer is known. */
    private List<String> forwardedFor = List.of();
    private String realIp;
    private Connection connection;
    private FrameAssembler assembler;
    private RateLimit rateLimit;
    private final WritesInFlight writes = new WritesInFlight();
    /** When the message being handled arrived (the ack latency meter starts there). */
    private long receivedNanos;
    private Chunks chunks;
    private volatile Principal principal;
    private boolean framingDecided;
    /** Whether a reaper releases the connection when Helidon's handler thread ends. */
    private boolean reaped;

    ClientSession(Gateway gateway) {
        this.gateway = gateway;
    }

    @Override
    public Optional<Headers> onHttpUpgrade(HttpPrologue prologue, Headers headers) {
        if (gateway.settings().limits().trustForwardedFor()) {
            forwardedFor = headers.all(HeaderNames.X_FORWARDED_FOR, List::of);
            realIp = headers.first(HeaderNames.create("X-Real-IP")).orElse(null);
        }
        return Optional.empty();
    }

    @Override
    public void onOpen(WsSession session) {
        SocketAddress peer = session.socketContext().remotePeer().address();
        String ip = socketIp(peer);
        if (gateway.settings().limits().trustForwardedFor()) {
            ip = gateway.settings().limits().trustedProxies().clientAddress(
                    peer instanceof InetSocketAddress inet ? inet.getAddress() : null, ip, forwardedFor, realIp);
        }
        Optional<Connection> admitted = gateway.admit(ip, session);
        if (admitted.isEmpty()) {
            return;
        }
        connection = admitted.get();
        releaseWhenHandlerEnds(connection);
        var limits = gateway.settings().limits();
        assembler = new FrameAssembler(limits.maxMessageBytes());
        rateLimit = new RateLimit(limits.maxMessagesPerMinute(), System.nanoTime());
        chunks = new Chunks(limits.maxMessageBytes());
        if (!gateway.authenticator().required()) {
            principal = gateway.authenticator().anonymous(ip);
            connection.userId(principal.userId());
        } else {
            gateway.scheduleAuthTimeout(connection, () -> principal != null);
        }
    }

    /**
     * Helidon calls neither onClose nor onError when a connection ends while it reads a frame: the peer
     * dropping TCP without a close frame, or a frame over the size limit (close 1009). It runs each
     * connection on its own virtual thread, and onOpen on that thread, so the connection is over exactly
     * when that thread ends; a watcher releases it then (release is idempotent). Anything else is left
     * to the heartbeat.
     */
    private void releaseWhenHandlerEnds(Connection c) {
        Thread handler = Thread.currentThread();
        if (!handler.isVirtual()) {
            return;
        }
        Thread.ofVirtual().name("ws-reaper-" + c.id()).start(() -> {
            try {
                handler.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            gateway.release(c);
        });
        reaped = true;
    }

    private static String socketIp(SocketAddress address) {
        return address instanceof InetSocketAddress inet && inet.getAddress() != null
                ? inet.getAddress().getHostAddress() : String.valueOf(address);
    }

    @Override
    public void onMessage(WsSession session, String text, boolean last) {
        if (connection != null) {
            connection.markAlive();
            complete(assembler.text(text, last));
        }
    }

    @Override
    public void onMessage(WsSession session, BufferData buffer, boolean last) {
        if (connection != null) {
            connection.markAlive();
            complete(assembler.binary(buffer.readBytes(), last));
        }
    }

    @Override
    public void onPing(WsSession session, BufferData buffer) {
        if (connection != null) {
            connection.markAlive();
        }
        session.pong(buffer);
    }

    @Override
    public void onPong(WsSession session, BufferData buffer) {
        if (connection != null) {
            connection.markAlive();
        }
    }

    /**
     * Helidon sends its close reply only after this returns, and closes the socket after that; so the
     * reply goes out first and the cleanup (unsubscribe, presence, fan-out) waits until the handler has
     * closed the socket: a peer's close event needs both.
     */
    @Override
    public void onClose(WsSession session, int status, String reason) {
        Connection c = connection;
        if (c != null) {
            c.closeReceived(status);
        }
        releaseAfterHandler();
    }

    @Override
    public void onError(WsSession session, Throwable t) {
        LOG.log(Level.FINE, "socket error", t);
        Connection c = connection;
        if (c != null) {
            c.stopSending();
        }
        releaseAfterHandler();
    }

    private void releaseAfterHandler() {
        Connection c = connection;
        if (c != null && !reaped) {
            connection = null;
            Thread.ofVirtual().name("ws-release-" + c.id()).start(() -> gateway.release(c));
        }
    }

    private void complete(FrameAssembler.Result result) {
        switch (result) {
            case FrameAssembler.Result.Partial p -> {
            }
            case FrameAssembler.Result.TooLarge t -> reject(new ProtocolException("Message too large (" + t.bytes()
                    + " bytes, max " + gateway.settings().limits().maxMessageBytes() + ")", "INVALID_MESSAGE"));
            case FrameAssembler.Result.Complete c -> {
                if (!framingDecided) {
                    // The first message decides how we answer (§2.3, R2).
                    framingDecided = true;
                    connection.framing(c.text() || (c.bytes().length > 0 && Codec.isJsonStart(c.bytes()[0]))
                            ? dev.synckit.server.protocol.Framing.JSON : dev.synckit.server.protocol.Framing.BINARY);
                }
                receive(c.bytes(), c.text(), false);
            }
        }
    }

    private void receive(byte[] bytes, boolean text, boolean fromChunks) {
        long received = System.nanoTime();
        Message message;
        try {
            Codec.Decoded decoded = text ? Codec.decode(new String(bytes, java.nio.charset.StandardCharsets.UTF_8)) : Codec.decode(bytes);
            message = decoded.message();
            Meters.messageIn(decoded.type().wireName());
        } catch (ProtocolException e) {
            Meters.messageIn("invalid");
            if (fromChunks || rateLimit.tryAcquire(System.nanoTime())) {
                reject(e);
            }
            return;
        }
        if (message instanceof Message.DeltaBatchChunk chunk) {
            if (fromChunks) {
                reject(ProtocolException.invalidFormat("a chunk cannot contain another chunk"));
                return;
            }
            // Chunks bypass the rate limit like upstream: the reassembled message is counted instead.
            try {
                byte[] whole = chunks.add(chunk, System.nanoTime());
                if (whole != null) {
                    receive(whole, whole.length > 0 && whole[0] == '{', true);
                }
            } catch (ProtocolException e) {
                reject(e);
            }
            return;
        }
        if (!rateLimit.tryAcquire(System.nanoTime())) {
            writes.awaitNone();
            connection.send(Outbound.error("Too many messages. Please slow down.", "code", "RATE_LIMIT_EXCEEDED"));
            return;
        }
        if (message instanceof Message.Ack || message instanceof Message.Pong) {
            // No reply to keep in order and nothing to do: an ack of a broadcast (the upstream test client
            // acks every one) must not wait for this connection's writes to commit, nor hold up the frames
            // behind it, a close among them.
            return;
        }
        String written = switch (message) {
            case Message.Delta d -> d.documentId();
            case Message.DeltaBatch b -> b.documentId();
            default -> null;
        };
        if (written == null || !writes.mayFollow(written)) {
            writes.awaitNone();
        }
        receivedNanos = received;
        gateway.handling(true);
        try {
            handle(message);
        } catch (RuntimeException e) {
            LOG.log(Level.SEVERE, connection.id() + ": " + message.getClass().getSimpleName() + " failed", e);
            connection.send(Outbound.error("Internal server error", null));
        } finally {
            gateway.handling(false);
        }
    }

    private void reject(ProtocolException e) {
        writes.awaitNone();
        LOG.info(() -> connection.id() + " (" + connection.ip() + ") sent bad input: " + e.getMessage());
        connection.send(Outbound.error(e.getMessage(), "code", e.code()));
    }

    private void handle(Message message) {
        switch (message) {
            case Message.Auth auth -> authenticate(auth);
            case Message.Ping ping -> connection.send(Outbound.of(MessageType.PONG, Json.object()));
            case Message.Pong pong -> {
            }
            case Message.Ack ack -> {
            }
            case Message.Connect connect -> {
            }
            case Message.Subscribe s -> {
                if (mayRead(s.documentId())) {
                    subscribe(s.documentId(), s.id(), "Subscribe failed");
                }
            }
            case Message.SyncRequest s -> {
                if (mayRead(s.documentId())) {
                    subscribe(s.documentId(), s.id(), "Sync request failed");
                }
            }
            case Message.SyncStep1 s -> {
                if (mayRead(s.documentId())) {
                    ObjectNode body = Json.object().put("documentId", s.documentId());
                    body.putArray("operations");
                    connection.send(Outbound.of(MessageType.SYNC_STEP2, body));
                }
            }
            case Message.Unsubscribe u -> gateway.documents().unsubscribe(connection, u.documentId());
            case Message.Delta d -> {
                if (mayWrite(d.documentId())) {
                    write(d.documentId(), d.changes(), d.clock(), List.of(), d.clientId(),
                            d.messageId() != null ? d.messageId() : d.id(), "Delta application failed");
                }
            }
            case Message.DeltaBatch b -> {
                if (mayWrite(b.documentId())) {
                    writeBatch(b);
                }
            }
            case Message.AwarenessSubscribe a -> {
                if (mayRead(a.documentId())) {
                    gateway.awareness().subscribe(connection, a.documentId());
                }
            }
            case Message.AwarenessUpdate a -> {
                if (mayRead(a.documentId())) {
                    gateway.awareness().update(connection, a.documentId(), a.clientId(), a.state(), a.clock());
                }
            }
            case Message.DeltaBatchChunk c -> throw new IllegalStateException("chunks are reassembled before dispatch");
        }
    }

    private void authenticate(Message.Auth auth) {
        var authenticator = gateway.authenticator();
        Optional<Principal> result;
        if (auth.token() != null && (authenticator.required() || authenticator.jwt().isPresent())) {
            result = authenticator.fromToken(auth.token());
        } else if (auth.apiKey() != null) {
            result = authenticator.fromApiKey(auth.apiKey());
        } else if (!authenticator.required()) {
            // Auth is off and the token cannot be checked (no JWT secret): treat it as anonymous.
            result = Optional.of(authenticator.anonymous(null));
        } else {
            LOG.info(() -> connection.id() + " sent auth without credentials while auth is required");
            connection.send(Outbound.error("Authentication required", "code", "AUTH_REQUIRED"));
            connection.close(1008, "Authentication required");
            return;
        }
        if (result.isEmpty()) {
            LOG.info(() -> connection.id() + " (" + connection.ip() + ") failed to authenticate");
            connection.send(Outbound.of(MessageType.AUTH_ERROR, Json.object().put("error", "Authentication failed")));
            connection.close(1008, "Authentication failed");
            return;
        }
        Principal p = result.get();
        principal = p;
        gateway.expireAt(connection, p.expiresAt(), () -> principal == p);
        connection.userId(p.userId());
        ObjectNode body = Json.object().put("userId", p.userId());
        body.set("permissions", p.permissions().toJson());
        connection.send(Outbound.of(MessageType.AUTH_SUCCESS, body));
    }

    private boolean authenticated() {
        if (principal == null) {
            connection.send(Outbound.error("Not authenticated", null));
            return false;
        }
        return true;
    }

    private boolean mayRead(String documentId) {
        return permitted(documentId, principal -> principal.permissions().mayRead(documentId));
    }

    private boolean mayWrite(String documentId) {
        return permitted(documentId, principal -> principal.permissions().mayWrite(documentId));
    }

    private boolean permitted(String documentId, java.util.function.Predicate<Principal> check) {
        if (!authenticated()) {
            return false;
        }
        if (!check.test(principal)) {
            connection.send(Outbound.error("Permission denied", "documentId", documentId));
            return false;
        }
        return true;
    }

    private void subscribe(String documentId, String requestId, String failure) {
        try {
            gateway.documents().subscribe(connection, documentId,
                    requestId != null ? requestId : Outbound.newId());
        } catch (StorageException e) {
            LOG.log(Level.WARNING, connection.id() + ": loading " + documentId + " failed", e);
            connection.send(Outbound.error(failure, "documentId", documentId));
        }
    }

    private void writeBatch(Message.DeltaBatch batch) {
        List<Message.FieldChange> changes = new ArrayList<>();
        Map<String, Long> clock = new HashMap<>();
        List<ObjectNode> ops = new ArrayList<>();
        for (Message.Operation op : batch.operations()) {
            switch (op) {
                case Message.Operation.Set set -> {
                    changes.add(set.change());
                    set.clock().forEach((k, v) -> clock.merge(k, v, Math::max));
                }
                case Message.Operation.Text t -> ops.add(t.raw());
                case Message.Operation.Typed t -> ops.add(t.op());
                case Message.Operation.Other o -> {
                }
            }
        }
        connection.writesBatches();
        if (batch.clientId() != null) {
            connection.speaksAs(batch.clientId());
        }
        write(batch.documentId(), changes, clock, ops, batch.clientId(),
                batch.messageId() != null ? batch.messageId() : batch.id(), "Delta batch application failed");
    }

    private void write(String documentId, List<Message.FieldChange> changes, Map<String, Long> clock,
                       List<ObjectNode> text, String clientId, String ackId, String failure) {
        long received = receivedNanos;
        // The outcome may arrive after the client left (the field is cleared on close): keep our own reference.
        Connection writer = connection;
        java.util.function.Consumer<Exception> settled = e -> {
            try {
                if (e == null) {
                    Meters.ackLatency(System.nanoTime() - received);
                } else if (e instanceof ProtocolException refused) {
                    LOG.info(() -> writer.id() + " (" + writer.ip() + "): write to " + documentId + " refused: " + refused.getMessage());
                    writer.send(Outbound.error(refused.getMessage(),
                            Json.object().put("code", refused.code()).put("documentId", documentId)));
                } else {
                    LOG.log(Level.WARNING, writer.id() + ": write to " + documentId + " failed, not acknowledged", e);
                    writer.send(Outbound.error(failure, "documentId", documentId));
                }
            } finally {
                writes.end();
            }
        };
        writes.begin(documentId);
        try {
            // Write access does not imply read (§7.2): only a reader becomes a subscriber by writing.
            boolean reader = principal.permissions().mayRead(documentId);
            gateway.writes().write(writer, reader,
                    new WriteRequest(documentId, changes, clock, text, writer.id(), clientId, ackId), settled);
        } catch (StorageException | RuntimeException e) {
            settled.accept(e);
        }
    }
}
