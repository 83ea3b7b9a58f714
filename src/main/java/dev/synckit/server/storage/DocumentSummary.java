package dev.synckit.server.storage;

/** A document in a listing. */
public record DocumentSummary(String id, long seq, long updatedAt) {
}
