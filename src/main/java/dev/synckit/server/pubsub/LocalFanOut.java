package dev.synckit.server.pubsub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.storage.DocumentWrite;

import java.util.List;

/** A single instance: there is nobody else to tell or to hear from. */
public final class LocalFanOut implements FanOut {
    @Override
    public void start(Remote remote) {
    }

    @Override
    public void publish(DocumentWrite write, List<ObjectNode> typeOps) {
    }

    @Override
    public void publishPresence(String documentId, String clientId, JsonNode state, long clock) {
    }

    @Override
    public void listen(String documentId) {
    }

    @Override
    public void unlisten(String documentId) {
    }

    @Override
    public List<Presence> presence(String documentId) {
        return List.of();
    }

    @Override
    public String describe() {
        return "single instance";
    }

    @Override
    public void close() {
    }
}
