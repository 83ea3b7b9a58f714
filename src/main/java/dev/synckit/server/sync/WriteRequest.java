package dev.synckit.server.sync;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Message.FieldChange;

import java.util.List;
import java.util.Map;

/**
 * One client write message as the sync core applies it: field changes in order, the client's clock, text
 * ops, and the ids that acknowledge and de-duplicate it. {@code writerId} names the connection that sent it
 * (recorded with each delta); {@code clientId} and {@code ackId} may be null.
 */
public record WriteRequest(String documentId, List<FieldChange> changes, Map<String, Long> clock,
                           List<ObjectNode> typeOps, String writerId, String clientId, String ackId) {}
