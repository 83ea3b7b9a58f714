package dev.synckit.server.config;

/** A setting that stops startup. The message names the key and what to do about it. */
public final class ConfigException extends RuntimeException {
    public ConfigException(String message) {
        super(message);
    }
}
