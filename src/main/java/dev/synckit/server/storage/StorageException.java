package dev.synckit.server.storage;

/** The store could not do what was asked; nothing of the failed call was stored. */
public class StorageException extends Exception {
    public StorageException(String message, Throwable cause) {
        super(message, cause);
    }
}
