//! The one classification of domain errors, and what each class answers on gRPC and on HTTP
//! (quickwit's `ServiceErrorCode`).
//!
//! A domain error says what went wrong ([`StoreError::code`], [`TokenError::code`]); grpc.rs and
//! api.rs turn the class into their protocol's status with [`ErrorCode::grpc`] and
//! [`ErrorCode::http`], so the two protocols cannot disagree about an error.
//!
//! A class that only one protocol's callers can cause (only agents send batches and are refused;
//! only API clients hold page cursors) answers an internal error on the other protocol: there,
//! the collector itself would have made the mistake.
//!
//! [`StoreError::code`]: crate::store::StoreError::code
//! [`TokenError::code`]: crate::store::TokenError::code

use axum::http::StatusCode;

/// What kind of failure an error is, independent of the protocol that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// An argument of the request is out of range: the caller's mistake on either protocol.
    BadRequest,
    /// An agent's batch breaks the protocol; only agents send batches.
    BadBatch,
    /// A page cursor the store did not hand out; only API clients send cursors.
    BadCursor,
    /// The agent may not speak: unknown, revoked, or its enrollment token refused; only agents
    /// are identified this way.
    AgentRefused,
    /// The database is busy: retrying later may succeed.
    Unavailable,
    /// The collector failed (database, randomness, a dead worker).
    Internal,
}

impl ErrorCode {
    /// The gRPC status code of this class.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Self::BadRequest | Self::BadBatch => tonic::Code::InvalidArgument,
            Self::AgentRefused => tonic::Code::PermissionDenied,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::BadCursor | Self::Internal => tonic::Code::Internal,
        }
    }

    /// The HTTP status of this class.
    pub fn http(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::BadCursor => StatusCode::BAD_REQUEST,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadBatch | Self::AgentRefused | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{StoreError, TokenError};
    use tonic::Code;

    /// Every store and token error, its class, and the gRPC code and HTTP status it answers.
    #[test]
    fn every_error_has_one_class_and_its_two_statuses() {
        let store = |e: StoreError| (e.to_string(), e.code());
        let token = |e: TokenError| (e.to_string(), e.code());
        let agent_id = || "agent-1".to_string();
        let path = || std::path::PathBuf::from("/var/lib/aiscout-collector/inventory.db");
        let table = [
            (
                store(StoreError::UnknownAgent { agent_id: agent_id() }),
                ErrorCode::AgentRefused,
                Code::PermissionDenied,
                500,
            ),
            (
                store(StoreError::AgentRevoked { agent_id: agent_id() }),
                ErrorCode::AgentRefused,
                Code::PermissionDenied,
                500,
            ),
            (
                store(StoreError::InvalidBatch { agent_id: agent_id(), sequence: 0, reason: "sequence 0".into() }),
                ErrorCode::BadBatch,
                Code::InvalidArgument,
                500,
            ),
            (
                store(StoreError::InvalidArgument { field: "uses", reason: "at least 1".into() }),
                ErrorCode::BadRequest,
                Code::InvalidArgument,
                400,
            ),
            (store(StoreError::InvalidCursor { cursor: "x".into() }), ErrorCode::BadCursor, Code::Internal, 400),
            (
                store(StoreError::SchemaTooNew { path: path(), found: 9, supported: 2 }),
                ErrorCode::Internal,
                Code::Internal,
                500,
            ),
            (
                store(StoreError::Open { path: path(), source: "denied".into() }),
                ErrorCode::Internal,
                Code::Internal,
                500,
            ),
            (store(StoreError::Busy { operation: "apply batch" }), ErrorCode::Unavailable, Code::Unavailable, 503),
            (store(StoreError::Random { source: "no entropy".into() }), ErrorCode::Internal, Code::Internal, 500),
            (
                store(StoreError::Backend { operation: "apply batch", source: "disk full".into() }),
                ErrorCode::Internal,
                Code::Internal,
                500,
            ),
            (token(TokenError::Unknown), ErrorCode::AgentRefused, Code::PermissionDenied, 500),
            (
                token(TokenError::Exhausted { token_id: "t".into() }),
                ErrorCode::AgentRefused,
                Code::PermissionDenied,
                500,
            ),
            (token(TokenError::Expired { token_id: "t".into() }), ErrorCode::AgentRefused, Code::PermissionDenied, 500),
            (token(TokenError::Revoked { token_id: "t".into() }), ErrorCode::AgentRefused, Code::PermissionDenied, 500),
            (
                token(TokenError::Store(StoreError::Busy { operation: "consume enrollment token" })),
                ErrorCode::Unavailable,
                Code::Unavailable,
                503,
            ),
        ];
        for ((error, class), code, grpc, http) in table {
            assert_eq!(class, code, "{error}");
            assert_eq!(code.grpc(), grpc, "{error}");
            assert_eq!(code.http().as_u16(), http, "{error}");
        }
    }
}
