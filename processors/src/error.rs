//! Errors of the hot store and the processor loop.

/// A hot-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine reported an I/O or corruption error.
    #[error("storage engine: {0}")]
    Engine(String),
    /// The store is held by another process.
    #[error("the store at {path} is in use by another billstream process (stop it first): {detail}")]
    Locked {
        /// The store directory.
        path: String,
        /// What the engine said.
        detail: String,
    },
    /// A stored value did not decode: written by an incompatible release, or corrupted.
    #[error("stored {table} value is unreadable: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// Why.
        detail: String,
    },
    /// The store was written by a release with another on-disk layout.
    #[error(
        "the store at {path} has on-disk format {found}, this build reads format {expected}; \
         start with an empty store directory (a store is not migrated between formats yet)"
    )]
    Format {
        /// The store directory.
        path: String,
        /// Format found on disk.
        found: u32,
        /// Format this build reads and writes.
        expected: u32,
    },
    /// A write conflicted with one that already exists (e.g. an API key hash reused).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A page token the caller sent is not one this store issued.
    #[error("invalid page token")]
    BadPageToken,
    /// The backend is unreachable; retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
