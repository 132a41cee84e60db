//! Sending the spool to the collector: one `Inventory.Stream` per connection.
//!
//! A drain, in order:
//! 1. over a mutual-TLS channel ([`super::channel`]), with gzip both ways;
//! 2. send `Hello`, then every pending spool record as a `Batch` whose `sequence` is the
//!    record's; the payload is a prost-encoded `Batch` written when the record was spooled;
//! 3. each `Ack(n)` acknowledges the spool up to `n` ([`crate::spool::Spool::ack`]), which
//!    deletes those records; a `SnapshotRequest` is reported to the caller, which spools a
//!    snapshot; `RetryAfterMs` (the collector's per-agent rate limit, which also ends the
//!    stream) ends the drain with [`TransportError::RetryAfter`]: the caller waits that long;
//! 4. the drain ends when the last sent sequence is acknowledged, or fails when the stream
//!    breaks or no acknowledgement arrives within [`ACK_TIMEOUT`]; whatever was not
//!    acknowledged stays in the spool and is sent again by the next drain (the collector
//!    ignores sequences it already applied).

use std::time::Duration;

use aiscout_proto::v1::{self, agent_message, collector_message, inventory_client::InventoryClient};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use super::channel::error_chain;
use crate::spool::Spool;

/// Longest wait for an acknowledgement.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait a collector's `RetryAfterMs` may impose (it is the rest of a one-minute window).
const MAX_RETRY_AFTER_MS: u64 = 60_000;

/// Largest message sent (the collector accepts 8 MiB).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Errors of a drain.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The collector refused or broke the stream. The status, with its causes, is in the
    /// message and not a `source`, so logs (which print the message) show all of it and
    /// error chains print it once.
    #[error("collector: {}", status_text(.0))]
    Status(tonic::Status),
    /// The collector's rate limit ended the stream: resend after this wait.
    #[error("collector rate limit: retry after {0:?}")]
    RetryAfter(Duration),
    /// No acknowledgement in time.
    #[error("no acknowledgement of sequence {0} within {ACK_TIMEOUT:?}")]
    AckTimeout(u64),
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// A spooled payload does not decode (it is skipped and acknowledged by the next ack).
    #[error("spooled record {sequence} does not decode: {message}")]
    Payload {
        /// Its sequence.
        sequence: u64,
        /// The decoder's message.
        message: String,
    },
}

/// `code description: message: cause: cause…` of a status, e.g. `the operation was cancelled:
/// operation was canceled: transport error: connection closed`.
fn status_text(status: &tonic::Status) -> String {
    let mut out = format!("{}: {}", status.code().description(), status.message());
    if let Some(cause) = std::error::Error::source(status) {
        out.push_str(": ");
        out.push_str(&error_chain(cause));
    }
    out
}

impl From<tonic::Status> for TransportError {
    fn from(status: tonic::Status) -> Self {
        Self::Status(status)
    }
}

/// What a drain did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Batches sent.
    pub sent: u64,
    /// Highest sequence acknowledged.
    pub acked: u64,
    /// The collector asked for a full snapshot (with its reason).
    pub snapshot_requested: Option<String>,
    /// The collector asked for a certificate renewal now (with its reason): a CA rotation.
    pub renewal_requested: Option<String>,
}

/// The inventory client over `channel` ([`super::channel::connect`]): gzip both ways, messages
/// up to [`MAX_MESSAGE_BYTES`].
pub fn client(channel: Channel) -> InventoryClient<Channel> {
    InventoryClient::new(channel)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

fn message(m: agent_message::Message) -> v1::AgentMessage {
    v1::AgentMessage { message: Some(m) }
}

/// Sends every pending spool record and waits for their acknowledgements.
pub async fn drain(
    client: &mut InventoryClient<Channel>,
    spool: &Spool,
    agent_version: &str,
) -> Result<DrainOutcome, TransportError> {
    let (tx, rx) = mpsc::channel::<v1::AgentMessage>(8);
    let hello = v1::Hello { agent_version: agent_version.to_string() };
    // The outbound side is fed from a task so acknowledgements are read while sending.
    let _ = tx.send(message(agent_message::Message::Hello(hello))).await;
    let mut records = Vec::new();
    for r in spool.pending() {
        records.push(r?);
    }
    let last = records.last().map(|r| r.sequence);
    let mut outcome = DrainOutcome::default();
    let mut batches = Vec::with_capacity(records.len());
    for r in records {
        let mut batch = v1::Batch::decode(r.payload.as_slice())
            .map_err(|e| TransportError::Payload { sequence: r.sequence, message: e.to_string() })?;
        batch.sequence = r.sequence;
        batches.push(batch);
    }
    outcome.sent = batches.len() as u64;
    let sender = tokio::spawn(async move {
        for b in batches {
            if tx.send(message(agent_message::Message::Batch(b))).await.is_err() {
                break;
            }
        }
        // Keep the stream open until the acknowledgements are in: dropping `tx` ends it.
        tx
    });
    let mut inbound = client.stream(ReceiverStream::new(rx)).await?.into_inner();
    let Some(last) = last else {
        // Nothing to send: one exchange to learn whether the collector wants a snapshot or a
        // renewal (it says so first thing); the first answer may take a while, the next not.
        let mut wait = Duration::from_secs(2);
        while let Ok(Ok(Some(m))) = tokio::time::timeout(wait, inbound.message()).await {
            match m.message {
                Some(collector_message::Message::SnapshotRequest(r)) => outcome.snapshot_requested = Some(r.reason),
                Some(collector_message::Message::RenewCertificate(r)) => outcome.renewal_requested = Some(r.reason),
                _ => {}
            }
            wait = Duration::from_millis(200);
        }
        drop(sender);
        return Ok(outcome);
    };
    loop {
        let next =
            tokio::time::timeout(ACK_TIMEOUT, inbound.message()).await.map_err(|_| TransportError::AckTimeout(last))?;
        let Some(m) = next? else {
            return Err(TransportError::Status(tonic::Status::unavailable(
                "stream closed before the last acknowledgement",
            )));
        };
        match m.message {
            Some(collector_message::Message::Ack(a)) => {
                spool.ack(a.sequence.min(last))?;
                outcome.acked = outcome.acked.max(a.sequence);
                if a.sequence >= last {
                    break;
                }
            }
            Some(collector_message::Message::SnapshotRequest(r)) => {
                tracing::info!(reason = %r.reason, "collector asks for a snapshot");
                outcome.snapshot_requested = Some(r.reason);
            }
            Some(collector_message::Message::RenewCertificate(r)) => {
                tracing::info!(reason = %r.reason, "collector asks for a certificate renewal");
                outcome.renewal_requested = Some(r.reason);
            }
            Some(collector_message::Message::RetryAfterMs(ms)) => {
                tracing::warn!(
                    retry_after_ms = ms,
                    acked = outcome.acked,
                    "collector rate limit; the rest is sent later"
                );
                return Err(TransportError::RetryAfter(Duration::from_millis(ms.min(MAX_RETRY_AFTER_MS))));
            }
            None => {}
        }
    }
    drop(sender);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_prints_its_code_message_and_causes_once() {
        let plain = TransportError::from(tonic::Status::permission_denied("agent a is revoked"));
        let expected = format!("collector: {}: agent a is revoked", tonic::Code::PermissionDenied.description());
        assert_eq!(plain.to_string(), expected);
        assert!(std::error::Error::source(&plain).is_none(), "the status is not repeated as a source");
        let caused =
            TransportError::from(tonic::Status::from_error(Box::new(std::io::Error::other("connection closed"))));
        let text = caused.to_string();
        assert!(text.starts_with("collector: "), "{text}");
        assert!(text.ends_with(": connection closed"), "{text}");
    }
}
