package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;
import dev.synckit.server.protocol.MessageType;
import dev.synckit.server.protocol.Outbound;
import dev.synckit.server.pubsub.FanOut;

import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
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

        boolean empty() {
            return entries.isEmpty() && subscribers.isEmpty();
        }
    }

    /**
     * Rooms are created, joined and dropped only inside {@code compute} on their key, so a join cannot land
     * in a room that is being removed for being empty (it would hear nothing more and hold its listen forever).
     * The fan-out's listen and unlisten are called inside too, so their order matches the joins and leaves.
     */
    private final ConcurrentHashMap<String, Room> rooms = new ConcurrentHashMap<>();
    /** The rooms each local connection joined or published presence in, so a disconnect visits only those. */
    private final ConcurrentHashMap<Peer, Set<String>> roomsOf = new ConcurrentHashMap<>();
    private final Function<String, Set<Peer>> documentSubscribers;
    private final FanOut fanOut;
    private final Clock clock;
    private final long timeoutMillis;

    /** @param documentSubscribers the current document subscribers of an id (may be empty) */
    public Awareness(Function<String, Set<Peer>> documentSubscribers, FanOut fanOut,
                     Duration timeout, Clock clock) {
        this.documentSubscribers = documentSubscribers;
        this.fanOut = fanOut;
        this.timeoutMillis = timeout.toMillis();
        this.clock = clock;
    }

    public void subscribe(Peer peer, String documentId) {
        memberOf(peer, documentId);
        Room room = rooms.compute(documentId, (k, r) -> {
            Room joined = r == null ? new Room() : r;
            if (joined.subscribers.add(peer) && joined.subscribers.size() == 1) {
                fanOut.listen(documentId);
            }
            return joined;
        });
        // Presence held by other instances (a late joiner here must see it too); ours wins for our clients.
        long cutoff = clock.millis() - timeoutMillis;
        List<FanOut.Presence> shared = fanOut.presence(documentId);
        rooms.computeIfPresent(documentId, (k, r) -> {
            for (var remote : shared) {
                if (remote.updatedAt() >= cutoff) {
                    r.entries.putIfAbsent(remote.clientId(), new Entry(remote.state(), remote.clock(), remote.updatedAt(), null));
                }
            }
            return r;
        });
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
        if (owner != null && state != null) {
            memberOf(owner, documentId);
        }
        Set<Peer> subscribers = new HashSet<>();
        rooms.compute(documentId, (k, r) -> {
            Room room = r == null ? new Room() : r;
            if (state == null) {
                room.entries.remove(clientId);
            } else {
                room.entries.put(clientId, new Entry(state, updateClock, clock.millis(), owner));
            }
            subscribers.addAll(room.subscribers);
            return room.empty() ? null : room;
        });
        fanOut(subscribers, documentId, clientId, state, updateClock);
    }

    private void memberOf(Peer peer, String documentId) {
        roomsOf.computeIfAbsent(peer, p -> ConcurrentHashMap.newKeySet()).add(documentId);
    }

    /** Drops the room if nothing is left in it. */
    private void dropIfEmpty(String documentId) {
        rooms.computeIfPresent(documentId, (k, r) -> r.empty() ? null : r);
    }

    private void fanOut(Room room, String documentId, String clientId, JsonNode state, long updateClock) {
        fanOut(room.subscribers, documentId, clientId, state, updateClock);
    }

    private void fanOut(Set<Peer> roomSubscribers, String documentId, String clientId, JsonNode state, long updateClock) {
        ObjectNode body = Json.object().put("documentId", documentId).put("clientId", clientId);
        body.set("state", state == null ? Json.object().nullNode() : state);
        body.put("clock", updateClock);
        Outbound message = Outbound.of(MessageType.AWARENESS_UPDATE, body);
        Set<Peer> targets = new HashSet<>(roomSubscribers);
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
        Map<String, FanOut.Presence> shared = new java.util.HashMap<>();
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
                store(null, documentId, p.clientId(), p.state(), p.clock());
            }
        });
        dropIfEmpty(documentId);
    }

    /** Forgets a closed connection and announces that the clients it published presence for have left. */
    public void disconnected(Peer peer) {
        Set<String> joined = roomsOf.remove(peer);
        if (joined == null) {
            return;
        }
        for (String documentId : joined) {
            List<String> left = new ArrayList<>();
            Set<Peer> subscribers = new HashSet<>();
            rooms.computeIfPresent(documentId, (k, room) -> {
                if (room.subscribers.remove(peer) && room.subscribers.isEmpty()) {
                    fanOut.unlisten(documentId);
                }
                room.entries.forEach((clientId, e) -> {
                    if (e.owner == peer && room.entries.remove(clientId, e)) {
                        left.add(clientId);
                    }
                });
                subscribers.addAll(room.subscribers);
                return room.empty() ? null : room;
            });
            for (String clientId : left) {
                fanOut(subscribers, documentId, clientId, null, clock.millis());
                fanOut.publishPresence(documentId, clientId, null, clock.millis());
            }
        }
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
        rooms.keySet().forEach(this::dropIfEmpty);
        return removed;
    }

    public int documentCount() {
        return rooms.size();
    }
}
