package dev.synckit.server.protocol;

/** How a connection's messages are framed on the wire (§2.3). */
public enum Framing {
    /** 13-byte header + JSON payload, sent in binary frames. What the SDK and test clients use. */
    BINARY,
    /** A flat JSON object per text frame. */
    JSON
}
