package dev.synckit.server.auth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.synckit.server.protocol.Json;

import java.util.ArrayList;
import java.util.List;

/**
 * The upstream RBAC model (PROTOCOL.md §7.2): exact document ids or the single wildcard {@code "*"};
 * write does not imply read; admins may do everything.
 */
public record Permissions(List<String> canRead, List<String> canWrite, boolean isAdmin) {
    public static final Permissions NONE = new Permissions(List.of(), List.of(), false);
    public static final Permissions EVERYTHING = new Permissions(List.of("*"), List.of("*"), false);
    public static final Permissions ADMIN = new Permissions(List.of(), List.of(), true);

    public boolean mayRead(String documentId) {
        return isAdmin || canRead.contains("*") || canRead.contains(documentId);
    }

    public boolean mayWrite(String documentId) {
        return isAdmin || canWrite.contains("*") || canWrite.contains(documentId);
    }

    public ObjectNode toJson() {
        ObjectNode node = Json.object();
        canRead.forEach(node.putArray("canRead")::add);
        canWrite.forEach(node.putArray("canWrite")::add);
        node.put("isAdmin", isAdmin);
        return node;
    }

    /** Reads a {@code permissions} claim; anything missing or ill-typed grants nothing (never throws). */
    public static Permissions fromJson(JsonNode node) {
        if (node == null || !node.isObject()) {
            return NONE;
        }
        return new Permissions(strings(node.get("canRead")), strings(node.get("canWrite")),
                node.path("isAdmin").isBoolean() && node.get("isAdmin").booleanValue());
    }

    private static List<String> strings(JsonNode array) {
        List<String> out = new ArrayList<>();
        if (array != null && array.isArray()) {
            array.forEach(e -> {
                if (e.isTextual()) {
                    out.add(e.textValue());
                }
            });
        }
        return List.copyOf(out);
    }
}
