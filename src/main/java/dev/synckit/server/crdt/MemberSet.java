package dev.synckit.server.crdt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;

/**
 * A set as the SDK's {@code SyncSet} edits it. SDK 0.3.0 sends no tags with its adds and removes and applies
 * remote ones by value, so the only order every replica can agree on is the server's: ops apply in the
 * order they commit, and every replica (the writer too) receives them in that order. Members keep their
 * insertion order so snapshots are stable. Immutable.
 */
public record MemberSet(List<String> members) {
    public static final MemberSet EMPTY = new MemberSet(List.of());

    public MemberSet {
        members = List.copyOf(members);
    }

    public MemberSet add(String value) {
        if (members.contains(value)) {
            return this;
        }
        List<String> next = new ArrayList<>(members);
        next.add(value);
        return new MemberSet(next);
    }

    public MemberSet remove(String value) {
        List<String> next = new ArrayList<>(members);
        return next.remove(value) ? new MemberSet(next) : this;
    }

    public ArrayNode toJson() {
        ArrayNode out = JsonNodeFactory.instance.arrayNode();
        members.forEach(out::add);
        return out;
    }

    public static MemberSet fromJson(JsonNode json) {
        LinkedHashSet<String> out = new LinkedHashSet<>();
        json.forEach(v -> out.add(v.asText()));
        return new MemberSet(List.copyOf(out));
    }
}
