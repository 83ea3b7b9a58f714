package dev.synckit.server.auth;

import java.time.Instant;

/** Who a connection acts as. {@code email} may be null; {@code expiresAt} is null when the credential never expires. */
public record Principal(String userId, String email, Permissions permissions, Instant expiresAt) {
}
