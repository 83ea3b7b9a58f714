package dev.synckit.server.auth;

/** Who a connection acts as. {@code email} may be null. */
public record Principal(String userId, String email, Permissions permissions) {
}
