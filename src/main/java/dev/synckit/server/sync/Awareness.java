package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.protocol.Outbound;

import java.time.Clock;
import java.time.Duration;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * Presence per document (PROTOCOL.md §6.12): entries keyed by the SDK's client id, removed when they
 * leave, go stale, or the connection that published them closes. Updates reach the awareness subscribers
 * and also the document subscribers, because the SDK does not re-send {@code awareness_subscribe} after a
 * reconnect (§13 R9).
 */
public final class Awareness {
    private record Entry(JsonNode state, long clock, long updatedAt, Peer owner) {}

    private static final class Room {
        final Map<String, Entry> entries = new ConcurrentHashMap<>();
        final Set<Peer> subscribers = ConcurrentHashMap.newKeySet();
    }

    private final Map<String, Room> rooms = new ConcurrentHashMap<>();
    private final Function<String, Set<Peer>> documentSubscribers;
    private final Clock clock;
    private final long timeoutMillis;

    /** @param documentSubscribers the current document subscribers of an id (may be empty) */
    public Awareness(Function<String, Set<Peer>> documentSubscribers, Duration timeout, Clock clock) {
        this.documentSubscribers = documentSubscribers;
        this.timeoutMillis = timeout.toMillis();
        this.clock = clock;
    }

    public void subscribe(Peer peer, String documentId) {
        Room room = rooms.computeIfAbsent(documentId, k -> new Room());
        room.subscribers.add(peer);
        ObjectNode body = Json.object().put("documentId", documentId);
        ArrayNode states = body.putArray("states");
        room.entries.forEach((clientId, e) -> states.addObject()
                .put("clientId", clientId).<ObjectNode>set("state", e.state).put("clock", e.clock));
        peer.send(Outbound.of(MessageType.AWARENESS_STATE, body));
    }

    /** Stores or (with a null state) removes a client's presence and fans the update out, sender included. */
    public void update(Peer sender, String documentId, String clientId, JsonNode state, long updateClock) {
        Room room = rooms.computeIfAbsent(documentId, k -> new Room());
        if (state == null) {
            room.entries.remove(clientId);
        } else {
            room.entries.put(clientId, new Entry(state, updateClock, clock.millis(), sender));
        }
        fanOut(room, documentId, clientId, state, updateClock);
    }

    private void fanOut(Room room, String documentId, String clientId, JsonNode state, long updateClock) {
        ObjectNode body = Json.object().put("documentId", documentId).put("clientId", clientId);
        body.set("state", state == null ? Json.object().nullNode() : state);
        body.put("clock", updateClock);
        Outbound message = Outbound.of(MessageType.AWARENESS_UPDATE, body);
        Set<Peer> targets = new HashSet<>(room.subscribers);
        targets.addAll(documentSubscribers.apply(documentId));
        targets.forEach(p -> p.send(message));
    }

    /** Forgets a closed connection and announces that the clients it published presence for have left. */
    public void disconnected(Peer peer) {
        rooms.forEach((documentId, room) -> {
            room.subscribers.remove(peer);
            room.entries.forEach((clientId, e) -> {
                if (e.owner == peer && room.entries.remove(clientId, e)) {
                    fanOut(room, documentId, clientId, null, clock.millis());
                }
            });
        });
        rooms.entrySet().removeIf(r -> r.getValue().entries.isEmpty() && r.getValue().subscribers.isEmpty());
    }

    /** Removes entries not refreshed within the timeout, announcing a leave for each; returns how many. */
    public int sweep() {
        long cutoff = clock.millis() - timeoutMillis;
        int removed = 0;
        for (Map.Entry<String, Room> r : rooms.entrySet()) {
            Room room = r.getValue();
            for (Map.Entry<String, Entry> e : room.entries.entrySet()) {
                if (e.getValue().updatedAt < cutoff && room.entries.remove(e.getKey(), e.getValue())) {
                    fanOut(room, r.getKey(), e.getKey(), null, clock.millis());
                    removed++;
                }
            }
        }
        rooms.entrySet().removeIf(r -> r.getValue().entries.isEmpty() && r.getValue().subscribers.isEmpty());
        return removed;
    }

    public int documentCount() {
        return rooms.size();
    }
}
