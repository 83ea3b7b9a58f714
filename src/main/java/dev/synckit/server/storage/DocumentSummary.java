package dev.synckit.server.storage;

/** A document in a listing: its id, sequence, last update (epoch ms) and number of live fields. */
public record DocumentSummary(String id, long seq, long updatedAt, int fields) {
}
