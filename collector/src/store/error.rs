//! Errors of the store, free of any backend's types, each classified once
//! ([`StoreError::code`], [`TokenError::code`]) for the protocols that report it.

use std::error::Error as StdError;
use std::path::PathBuf;

use crate::error_code::ErrorCode;

/// A backend's own error, boxed so that no database type leaks through the trait.
pub type BackendError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The agent id is not registered.
    #[error("agent {agent_id} is not enrolled")]
    UnknownAgent {
        /// The id asked for.
        agent_id: String,
    },
    /// The agent was revoked: its batches and renewals are refused.
    #[error("agent {agent_id} is revoked")]
    AgentRevoked {
        /// The revoked agent.
        agent_id: String,
    },
    /// A batch breaks the protocol (sequence 0, snapshot id 0).
    #[error("batch {sequence} of agent {agent_id} is invalid: {reason}")]
    InvalidBatch {
        /// Sender.
        agent_id: String,
        /// The batch's sequence.
        sequence: u64,
        /// What is wrong.
        reason: String,
    },
    /// An argument is out of range (an enrollment token with 0 uses).
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The argument.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A page cursor this store did not hand out.
    #[error("invalid page cursor {cursor:?}")]
    InvalidCursor {
        /// The cursor given.
        cursor: String,
    },
    /// The database was written by a newer collector.
    #[error("database {path} has schema version {found}, this collector knows up to {supported}")]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The database file cannot be created or opened.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BackendError,
    },
    /// Another writer held the database past the busy timeout (or, on a server database, a
    /// serialization conflict): retrying later may succeed.
    #[error("database is busy during {operation}")]
    Busy {
        /// What was being done.
        operation: &'static str,
    },
    /// The operating system gave no random bytes for a token.
    /// The database cannot be reached (down, refused, every connection busy): the caller backs
    /// off and retries; nothing was written.
    #[error("database is unavailable during {operation}: {source}")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("cannot generate a token secret: {source}")]
    Random {
        /// Why.
        #[source]
        source: BackendError,
    },
    /// Any other database failure; the operation's transaction was rolled back.
    #[error("database error during {operation}: {source}")]
    Backend {
        /// What was being done.
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: BackendError,
    },
}

impl StoreError {
    /// The class of this error, from which gRPC and HTTP take their status.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownAgent { .. } | Self::AgentRevoked { .. } => ErrorCode::AgentRefused,
            Self::InvalidBatch { .. } => ErrorCode::BadBatch,
            Self::InvalidArgument { .. } => ErrorCode::BadRequest,
            Self::InvalidCursor { .. } => ErrorCode::BadCursor,
            Self::Busy { .. } | Self::Unavailable { .. } => ErrorCode::Unavailable,
            Self::SchemaTooNew { .. } | Self::Open { .. } | Self::Random { .. } | Self::Backend { .. } => {
                ErrorCode::Internal
            }
        }
    }
}

/// Why an enrollment token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No token has this secret.
    #[error("unknown enrollment token")]
    Unknown,
    /// The token has no use left.
    #[error("enrollment token {token_id} has no use left")]
    Exhausted {
        /// The token.
        token_id: String,
    },
    /// The token's expiry is past.
    #[error("enrollment token {token_id} expired")]
    Expired {
        /// The token.
        token_id: String,
    },
    /// An operator revoked the token.
    #[error("enrollment token {token_id} is revoked")]
    Revoked {
        /// The token.
        token_id: String,
    },
    /// The store failed; the token is unchanged.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TokenError {
    /// The class of this error: a refused token refuses the agent; a store failure keeps its own.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unknown | Self::Exhausted { .. } | Self::Expired { .. } | Self::Revoked { .. } => {
                ErrorCode::AgentRefused
            }
            Self::Store(e) => e.code(),
        }
    }
}
