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
    private final dev.synckit.server.pubsub.FanOut fanOut;
    private final Clock clock;
    private final long timeoutMillis;

    /** @param documentSubscribers the current document subscribers of an id (may be empty) */
    public Awareness(Function<String, Set<Peer>> documentSubscribers, dev.synckit.server.pubsub.FanOut fanOut,
                     Duration timeout, Clock clock) {
        this.documentSubscribers = documentSubscribers;
        this.fanOut = fanOut;
        this.timeoutMillis = timeout.toMillis();
        this.clock = clock;
    }

    public void subscribe(Peer peer, String documentId) {
        Room room = rooms.computeIfAbsent(documentId, k -> new Room());
        if (room.subscribers.add(peer) && room.subscribers.size() == 1) {
            fanOut.listen(documentId);
        }
        // Presence held by other instances (a late joiner here must see it too); ours wins for our clients.
        long cutoff = clock.millis() - timeoutMillis;
        for (var remote : fanOut.presence(documentId)) {
            if (remote.updatedAt() >= cutoff) {
                room.entries.putIfAbsent(remote.clientId(), new Entry(remote.state(), remote.clock(), remote.updatedAt(), null));
            }
        }
        ObjectNode body = Json.object().put("documentId", documentId);
        ArrayNode states = body.putArray("states");
        room.entries.forEach((clientId, e) -> states.addObject()
                .put("clientId", clientId).<ObjectNode>set("state", e.state).put("clock", e.clock));
        peer.send(Outbound.of(MessageType.AWARENESS_STATE, body));
    }

    /** Stores or (with a null state) removes a client's presence and fans the update out, sender included. */
    public void update(Peer sender, String documentId, String clientId, JsonNode state, long updateClock) {
        store(sender, documentId, clientId, state, updateClock);
        fanOut.publishPresence(documentId, clientId, state, updateClock);
    }

    /** A presence change made through another instance: stored as nobody's here, and told to local clients. */
    public void remote(String documentId, String clientId, JsonNode state, long updateClock) {
        store(null, documentId, clientId, state, updateClock);
    }

    private void store(Peer owner, String documentId, String clientId, JsonNode state, long updateClock) {
        Room room = rooms.computeIfAbsent(documentId, k -> new Room());
        if (state == null) {
            room.entries.remove(clientId);
        } else {
            room.entries.put(clientId, new Entry(state, updateClock, clock.millis(), owner));
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

    /**
     * Presence messages from other instances may have been missed (we were not listening yet, or Redis was
     * away): take the shared presence as the truth for every entry not owned by a connection here.
     */
    public void resync(String documentId) {
        Room room = rooms.get(documentId);
        if (room == null) {
            return;
        }
        Map<String, dev.synckit.server.pubsub.FanOut.Presence> shared = new java.util.HashMap<>();
        fanOut.presence(documentId).forEach(p -> shared.put(p.clientId(), p));
        long cutoff = clock.millis() - timeoutMillis;
        room.entries.forEach((clientId, e) -> {
            if (e.owner == null && !shared.containsKey(clientId) && room.entries.remove(clientId, e)) {
                fanOut(room, documentId, clientId, null, clock.millis());
            }
        });
        shared.values().forEach(p -> {
            Entry mine = room.entries.get(p.clientId());
            if (p.updatedAt() >= cutoff && (mine == null || (mine.owner == null && mine.clock < p.clock()))) {
                room.entries.put(p.clientId(), new Entry(p.state(), p.clock(), p.updatedAt(), null));
                fanOut(room, documentId, p.clientId(), p.state(), p.clock());
            }
        });
    }

    /** Forgets a closed connection and announces that the clients it published presence for have left. */
    public void disconnected(Peer peer) {
        rooms.forEach((documentId, room) -> {
            if (room.subscribers.remove(peer) && room.subscribers.isEmpty()) {
                fanOut.unlisten(documentId);
            }
            room.entries.forEach((clientId, e) -> {
                if (e.owner == peer && room.entries.remove(clientId, e)) {
                    fanOut(room, documentId, clientId, null, clock.millis());
                    fanOut.publishPresence(documentId, clientId, null, clock.millis());
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
                    if (e.getValue().owner != null) {
                        // Only the instance that owns an entry announces its expiry to the others.
                        fanOut.publishPresence(r.getKey(), e.getKey(), null, clock.millis());
                    }
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
