package dev.synckit.server.protocol;

import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/** Message types with their binary codes (PROTOCOL.md §3.2). {@code delta_batch} is 0x50, the SDK's value. */
public enum MessageType {
    AUTH("auth", 0x01),
    AUTH_SUCCESS("auth_success", 0x02),
    AUTH_ERROR("auth_error", 0x03),
    SUBSCRIBE("subscribe", 0x10),
    UNSUBSCRIBE("unsubscribe", 0x11),
    SYNC_REQUEST("sync_request", 0x12),
    SYNC_RESPONSE("sync_response", 0x13),
    SYNC_STEP1("sync_step1", 0x14),
    SYNC_STEP2("sync_step2", 0x15),
    DELTA("delta", 0x20),
    ACK("ack", 0x21),
    DELTA_BATCH_CHUNK("delta_batch_chunk", 0x23),
    DELTA_BATCH("delta_batch", 0x50),
    PING("ping", 0x30),
    PONG("pong", 0x31),
    AWARENESS_UPDATE("awareness_update", 0x40),
    AWARENESS_SUBSCRIBE("awareness_subscribe", 0x41),
    AWARENESS_STATE("awareness_state", 0x42),
    ERROR("error", 0xFF),
    /** JSON framing only; has no binary code. */
    CONNECT("connect", -1);

    private static final Map<String, MessageType> BY_NAME = new HashMap<>();
    private static final MessageType[] BY_CODE = new MessageType[256];

    static {
        for (MessageType t : values()) {
            BY_NAME.put(t.wireName, t);
            if (t.code >= 0) {
                BY_CODE[t.code] = t;
            }
        }
    }

    private final String wireName;
    private final int code;

    MessageType(String wireName, int code) {
        this.wireName = wireName;
        this.code = code;
    }

    public String wireName() {
        return wireName;
    }

    public int code() {
        return code;
    }

    public static Optional<MessageType> byCode(int code) {
        return Optional.ofNullable(code >= 0 && code < 256 ? BY_CODE[code] : null);
    }

    public static Optional<MessageType> byName(String name) {
        return Optional.ofNullable(BY_NAME.get(name));
    }
}
