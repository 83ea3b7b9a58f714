package dev.synckit.server.storage;

/** The latest serialised text-CRDT state of a document ({@code textState}/{@code textClock} on the wire). */
public record TextState(String state, long clock) {
}
