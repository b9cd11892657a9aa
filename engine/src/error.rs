//! The engine's one error type.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// Bytes on disk are not what the engine wrote: a checksum mismatch, a truncated or malformed
    /// structure. `file` names the file (empty when the decoder was handed bare bytes) and `offset`
    /// the byte offset inside it where the problem was found.
    #[error("corruption in {file:?} at offset {offset}: {msg}")]
    Corruption {
        /// File the bad bytes are in (may be empty for in-memory decoding).
        file: String,
        /// Byte offset of the problem inside `file`.
        offset: u64,
        /// What was wrong.
        msg: String,
    },

    /// The caller passed something the engine refuses (too large a key, a bad option, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The path is not a Strata database and `create_if_missing` was not set.
    #[error(
        "{0:?} is not a strata database (no CURRENT file); set create_if_missing to create one"
    )]
    NotADatabase(PathBuf),

    /// `error_if_exists` was set and a database is already there.
    #[error("database {0:?} already exists and error_if_exists is set")]
    AlreadyExists(PathBuf),

    /// Another process (or another `Db` in this process) holds the database's lock file.
    #[error("database {0:?} is locked by another user")]
    Locked(PathBuf),

    /// The database was closed; no further operations are possible on any clone of it.
    #[error("database is closed")]
    Closed,

    /// An earlier write or fsync failed; the database refuses further writes because the state on
    /// disk is unknown. Reopen the database to recover from what is durable.
    #[error("database is poisoned by an earlier failure: {0}")]
    Poisoned(String),
}

impl Error {
    /// A corruption error at `offset` of an as yet unnamed file; see [`Error::in_file`].
    pub fn corruption(offset: u64, msg: impl Into<String>) -> Error {
        Error::Corruption {
            file: String::new(),
            offset,
            msg: msg.into(),
        }
    }

    /// Names the file of a corruption error (and shifts its offset by `base`), leaving other
    /// errors alone. Decoders work on byte slices; their callers know the file.
    pub fn in_file(self, file: impl Into<String>, base: u64) -> Error {
        match self {
            Error::Corruption {
                file: f,
                offset,
                msg,
            } if f.is_empty() => Error::Corruption {
                file: file.into(),
                offset: offset + base,
                msg,
            },
            other => other,
        }
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}
