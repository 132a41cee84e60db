//! Steps 4 and 5 of [`super::check_and_stage`], run by `self_update`'s custom backend: the
//! crate picks the release's archive for this target, downloads it through the transport it is
//! given, verifies the archive's zipsign signature (ed25519ph over the archive, in the context
//! of its name, [`release::archive_name`]) against the release keys, extracts `aiscout-agent`
//! from its top level and installs it at the staged path. Nothing is replaced in place: the
//! install path is `state_dir/update/versions/<version>/aiscout-agent`, never the running
//! binary, never a file the package manager owns.
//!
//! The transport ([`GrpcArchive`]) is the agent's mutual-TLS gRPC channel, not HTTP: a GET of
//! the one URL it serves (`aiscout-release:<sha256>`) downloads the archive by its signed
//! digest into `versions/<version>/archive`, at most the signed size, hashing as it arrives
//! ([`super::download`]), and answers with that file. The signed metadata's digest and the
//! archive's own signature are two checks by the same key: a collector can serve neither
//! another archive nor another release's.
//!
//! Bounds: the archive is at most the signed size (and [`super::MAX_ARCHIVE_BYTES`]); the
//! binary extracted is checked against [`super::MAX_BINARY_BYTES`] once installed. The
//! archive's contents are the release manager's, verified before extraction.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aiscout_proto::release::{self, PublicKey, Release};
use aiscout_proto::v1::inventory_client::InventoryClient;
use self_update::http_client::{HeaderMap, HttpClient, HttpResponse};
use tonic::transport::Channel;

use super::{io, UpdateError, MAX_BINARY_BYTES};

/// The URL the transport serves for `r`.
fn url_of(r: &Release) -> String {
    format!("aiscout-release:{}", r.sha256.to_ascii_lowercase())
}

/// The one release offered to self_update: the one [`release::decide`] chose.
struct Chosen(self_update::Release);

impl self_update::ReleaseSource for Chosen {
    fn get_releases(&self) -> self_update::Result<Vec<self_update::Release>> {
        Ok(vec![self.0.clone()])
    }
}

/// self_update's transport: the release archive over the agent's gRPC channel (module docs).
struct GrpcArchive {
    runtime: tokio::runtime::Handle,
    client: InventoryClient<Channel>,
    release: Release,
    archive: PathBuf,
    /// Why the download failed, as [`UpdateError`] (self_update keeps only a message).
    failure: Mutex<Option<UpdateError>>,
}

/// The downloaded archive, as a response body.
struct ArchiveFile {
    headers: HeaderMap,
    file: std::fs::File,
}

impl HttpResponse for ArchiveFile {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    fn body(self: Box<Self>) -> Box<dyn std::io::Read> {
        Box::new(self.file)
    }
}

impl HttpClient for GrpcArchive {
    fn get(&self, url: &str, _: &HeaderMap, _: Option<Duration>) -> self_update::Result<Box<dyn HttpResponse>> {
        if url != url_of(&self.release) {
            return Err(std::io::Error::other(format!("no such release archive: {url}")).into());
        }
        let mut client = self.client.clone();
        let result = self.runtime.block_on(super::download(&mut client, &self.release, &self.archive));
        if let Err(e) = result {
            let message = e.to_string();
            *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            return Err(std::io::Error::other(message).into());
        }
        let file = std::fs::File::open(&self.archive)?;
        Ok(Box::new(ArchiveFile { headers: HeaderMap::new(), file }))
    }
}

/// Downloads, verifies and installs `r` into `dir` (created empty by the caller) with
/// `self_update`; returns the installed binary. Runs on a blocking thread: the download is
/// driven on `runtime`.
pub(super) fn install(
    runtime: tokio::runtime::Handle,
    client: InventoryClient<Channel>,
    r: &Release,
    dir: &Path,
    keys: &[PublicKey],
) -> Result<PathBuf, UpdateError> {
    let bad = |reason: String| UpdateError::Archive { version: r.version.clone(), reason };
    let name = release::archive_name(&r.version, &r.target);
    let offered = self_update::Release::builder()
        .version(r.version.as_str())
        .name(r.version.as_str())
        .asset(self_update::ReleaseAsset::new(name, url_of(r)))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let transport = Arc::new(GrpcArchive {
        runtime,
        client,
        release: r.clone(),
        archive: dir.join("archive"),
        failure: Mutex::new(None),
    });
    let binary = dir.join("aiscout-agent");
    let keys: Vec<self_update::VerifyingKey> = keys.iter().map(PublicKey::to_bytes).collect();
    let result = self_update::backends::custom::Update::configure()
        .source(Chosen(offered))
        .http_client(Arc::clone(&transport) as Arc<dyn HttpClient>)
        .bin_name("aiscout-agent")
        .bin_path_in_archive("{{ bin }}")
        .bin_install_path(&binary)
        .current_version(crate::version())
        .target(&r.target)
        .release_tag(r.version.as_str())
        .verifying_keys(keys)
        .show_output(false)
        .show_download_progress(false)
        .no_confirm(true)
        .build()
        .and_then(|u| u.update_extended());
    if let Err(e) = result {
        if let Some(failure) = transport.failure.lock().unwrap_or_else(PoisonError::into_inner).take() {
            return Err(failure);
        }
        return Err(bad(match e {
            self_update::Error::Signature(_) | self_update::Error::NoSignatures(_) => {
                format!("archive signature: {e}")
            }
            other => other.to_string(),
        }));
    }
    let meta = std::fs::symlink_metadata(&binary).map_err(io(&binary))?;
    if !meta.is_file() {
        return Err(bad("aiscout-agent is not a regular file".into()));
    }
    if meta.len() > MAX_BINARY_BYTES {
        let _ = std::fs::remove_file(&binary);
        return Err(bad(format!("aiscout-agent is {} bytes, more than {MAX_BINARY_BYTES}", meta.len())));
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o700)).map_err(io(&binary))?;
    Ok(binary)
}
