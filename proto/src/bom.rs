//! The CycloneDX 1.6 bill of materials of an inventory, shared by the collector (`aiscout-collector
//! export --format cyclonedx`: the fleet or one host) and the agent (`aiscout-agent scan --format
//! cyclonedx`: this host), so both write the same shape (docs/exports.md has the mapping table).
//!
//! Both start from the public scan JSON of each entry (docs/scan-json.md), which is what the
//! agent prints and what the collector stores per sighting; this module turns an entry into a
//! component or a service and writes the document as a stream.
//!
//! # The document
//! 1. `metadata`: the timestamp, the tool that wrote it, and a random `serialNumber`. They are the
//!    only parts that change between two exports of the same inventory.
//! 2. `components`, in this order: hosts (`device`), models (`machine-learning-model`),
//!    frameworks (`library`), each group sorted by its `bom-ref`.
//! 3. `services`: the running inference servers, with their endpoints and whether they ask for
//!    authentication.
//! 4. `dependencies`: each server depends on its host and on the models it has open, each model
//!    and framework on the hosts that hold it (server → model → host).
//!
//! # Streaming
//! [`BomWriter`] writes one component, service or dependency at a time: nothing but the item
//! being written is held, so a fleet with a million sightings is exported in constant memory.
//! Sections must come in the order above; an item after a later section is an error, never a
//! document the schema refuses. Every string from an entry goes through `serde_json`, never into
//! hand-built JSON.

use std::io::{self, Write};

use serde_json::{json, Map, Value};

/// The CycloneDX version written.
pub const SPEC_VERSION: &str = "1.6";

/// At most this many safety findings of one model become properties: a hostile pickle can
/// name thousands of imports, and the scan JSON keeps them all.
pub const MAX_FINDING_PROPERTIES: usize = 64;

/// Who wrote the document and when: the parts of a BOM that differ between two exports of the
/// same inventory.
#[derive(Debug, Clone)]
pub struct BomHeader {
    /// `urn:uuid:<random v4 uuid>`.
    pub serial_number: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// `aiscout-collector` or `aiscout-agent`.
    pub tool_name: String,
    /// The tool's version.
    pub tool_version: String,
}

impl BomHeader {
    /// A header with a fresh serial number made from 16 random bytes.
    pub fn new(random: [u8; 16], timestamp: String, tool_name: &str, tool_version: &str) -> Self {
        Self {
            serial_number: format!("urn:uuid:{}", uuid_v4(random)),
            timestamp,
            tool_name: tool_name.to_owned(),
            tool_version: tool_version.to_owned(),
        }
    }
}

/// A version 4 UUID (RFC 9562) from 16 random bytes.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    if let Some(b) = bytes.get_mut(6) {
        *b = (*b & 0x0f) | 0x40;
    }
    if let Some(b) = bytes.get_mut(8) {
        *b = (*b & 0x3f) | 0x80;
    }
    let hex = hex::encode(bytes);
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default();
    format!("{}-{}-{}-{}-{}", part(0, 8), part(8, 12), part(12, 16), part(16, 20), part(20, 32))
}

/// The sections of the document, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    None,
    Components,
    Services,
    Dependencies,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Components => "components",
            Self::Services => "services",
            Self::Dependencies => "dependencies",
        }
    }
}

/// Writes a BOM item by item (module docs, *Streaming*).
#[derive(Debug)]
pub struct BomWriter<W: Write> {
    /// Where the document goes.
    out: W,
    /// The section whose array is open.
    section: Section,
}

impl<W: Write> BomWriter<W> {
    /// Writes the document's opening and metadata.
    pub fn begin(mut out: W, header: &BomHeader) -> io::Result<Self> {
        let metadata = json!({
            "timestamp": header.timestamp,
            "tools": {"components": [{"type": "application", "name": header.tool_name, "version": header.tool_version}]},
        });
        write!(
            out,
            "{{\"bomFormat\":\"CycloneDX\",\"specVersion\":\"{SPEC_VERSION}\",\"serialNumber\":{},\"version\":1,\n\"metadata\":{}",
            Value::String(header.serial_number.clone()),
            metadata
        )?;
        Ok(Self { out, section: Section::None })
    }

    fn item(&mut self, section: Section, item: &Value) -> io::Result<()> {
        if section < self.section {
            return Err(io::Error::other(format!(
                "bom: a {} item after the {} section",
                section.key(),
                self.section.key()
            )));
        }
        if section == self.section {
            self.out.write_all(b",\n")?;
        } else {
            if self.section != Section::None {
                self.out.write_all(b"\n]")?;
            }
            write!(self.out, ",\n\"{}\":[\n", section.key())?;
            self.section = section;
        }
        serde_json::to_writer(&mut self.out, item).map_err(io::Error::other)
    }

    /// Writes a component (hosts, then models, then frameworks).
    pub fn component(&mut self, component: &Value) -> io::Result<()> {
        self.item(Section::Components, component)
    }

    /// Writes a service.
    pub fn service(&mut self, service: &Value) -> io::Result<()> {
        self.item(Section::Services, service)
    }

    /// Writes that `bom_ref` depends on `depends_on` (skipped when it is empty).
    pub fn dependency(&mut self, bom_ref: &str, depends_on: &[String]) -> io::Result<()> {
        if depends_on.is_empty() {
            return Ok(());
        }
        self.item(Section::Dependencies, &json!({"ref": bom_ref, "dependsOn": depends_on}))
    }

    /// Closes the document and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.section != Section::None {
            self.out.write_all(b"\n]")?;
        }
        self.out.write_all(b"}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The text at `path` in `entry`.
pub fn text_at<'v>(entry: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(entry, |v, key| v.get(key))?.as_str().filter(|s| !s.is_empty())
}

/// A scalar at `path` as text (numbers and booleans written as JSON writes them).
fn scalar_at(entry: &Value, path: &[&str]) -> Option<String> {
    match path.iter().try_fold(entry, |v, key| v.get(key))? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A model's digest: its group's id when it has one, else its file's `sha256`; `None` unless it
/// is 64 hex digits (the collector's identity rule 1, docs/fleet.md).
pub fn model_digest(entry: &Value) -> Option<String> {
    let digest = text_at(entry, &["group", "id"]).or_else(|| text_at(entry, &["sha256"]))?;
    (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digest.to_ascii_lowercase())
}

/// The last part of a path (`/` or `\` separated).
fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).find(|p| !p.is_empty()).unwrap_or(path)
}

/// A model's name: its own (`metadata.name`), else its Hugging Face repository, Ollama name or
/// LM Studio model, else its file name (the group's root for a multi-file model).
pub fn model_name(entry: &Value) -> String {
    text_at(entry, &["metadata", "name"])
        .or_else(|| text_at(entry, &["source", "repo"]))
        .or_else(|| text_at(entry, &["source", "name"]))
        .or_else(|| text_at(entry, &["source", "model"]))
        .or_else(|| text_at(entry, &["group", "root"]).map(file_name))
        .or_else(|| text_at(entry, &["path"]).map(file_name))
        .unwrap_or("model")
        .to_owned()
}

/// Percent-encodes a purl segment: everything but letters, digits and `.-_~` (purl spec).
pub fn purl_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A version fit for a purl: an exact version, not a range (`>=1.2`, `^4`, `1.*`, `a || b`).
fn exact_version(version: &str) -> Option<&str> {
    let exact = !version.is_empty()
        && version.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+' | '!'));
    exact.then_some(version)
}

/// A model's package URL: `pkg:huggingface/<org>/<name>@<revision>` for a Hugging Face model
/// (purl's `huggingface` type), else `pkg:generic/<name>?checksum=sha256:<digest>`.
pub fn model_purl(entry: &Value, digest: &str) -> String {
    if text_at(entry, &["source", "kind"]) == Some("huggingface") && text_at(entry, &["source", "type"]).is_none() {
        if let Some(repo) = text_at(entry, &["source", "repo"]) {
            let path = repo.split('/').map(purl_encode).collect::<Vec<_>>().join("/");
            return match text_at(entry, &["source", "revision"]) {
                Some(rev) => format!("pkg:huggingface/{path}@{}", purl_encode(&rev.to_ascii_lowercase())),
                None => format!("pkg:huggingface/{path}"),
            };
        }
    }
    let name = purl_encode(&model_name(entry));
    if is_tree_digest(entry) {
        // A tree digest is not a file's checksum: the purl does not claim it is.
        format!("pkg:generic/{name}")
    } else {
        format!("pkg:generic/{name}?checksum=sha256:{digest}")
    }
}

/// Whether a model entry's digest is a tree digest (a multi-file group's or a directory
/// model's), not the SHA-256 of one file.
pub fn is_tree_digest(entry: &Value) -> bool {
    text_at(entry, &["group", "id"]).is_some() || text_at(entry, &["digest_source"]) == Some("tree")
}

/// A framework's package URL: `pkg:pypi/…`, `pkg:npm/…` (`%40scope/name`), `pkg:conda/…`, or
/// `pkg:generic/…` for a native executable; the version only when it is exact.
pub fn framework_purl(entry: &Value) -> Option<String> {
    let ecosystem = text_at(entry, &["ecosystem"])?.to_ascii_lowercase();
    let name = text_at(entry, &["name"])?;
    let (kind, name) = match ecosystem.as_str() {
        // PEP 503 names are lowercase with `-`; purl's pypi type says `_` becomes `-`.
        "pypi" => ("pypi", purl_encode(&name.to_ascii_lowercase().replace('_', "-"))),
        "npm" => ("npm", name.split('/').map(purl_encode).collect::<Vec<_>>().join("/")),
        "conda" => ("conda", purl_encode(name)),
        _ => ("generic", purl_encode(name)),
    };
    let version = text_at(entry, &["version"]).and_then(exact_version);
    Some(match version {
        Some(v) => format!("pkg:{kind}/{name}@{}", purl_encode(v)),
        None => format!("pkg:{kind}/{name}"),
    })
}

/// The asset id of an identity made of `parts` (the collector's identity rule 5): `<kind>:<hex
/// SHA-256 of the parts as a JSON array>`, with that canonical text.
pub fn hashed_asset_id(kind: &str, parts: &[&str]) -> (String, String) {
    use sha2::Digest;
    let identity = Value::Array(parts.iter().map(|p| Value::String((*p).to_owned())).collect()).to_string();
    let digest = hex::encode(sha2::Sha256::digest(identity.as_bytes()));
    (format!("{kind}:{digest}"), identity)
}

/// A framework entry's asset id, as the collector derives it (identity rule 2: ecosystem
/// lowercased, name, version or empty), so an agent's BOM and the collector's name it alike.
pub fn framework_asset_id(entry: &Value) -> Option<String> {
    let ecosystem = text_at(entry, &["ecosystem"])?.to_ascii_lowercase();
    let name = text_at(entry, &["name"])?;
    Some(hashed_asset_id("framework", &[&ecosystem, name, text_at(entry, &["version"]).unwrap_or("")]).0)
}

/// `{"name", "value"}` properties; empty values are left out (CycloneDX values are text).
pub fn properties(pairs: impl IntoIterator<Item = (String, String)>) -> Vec<Value> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect()
}

/// The facts a model entry gives, as `aiscout:` properties: format, size, verdict, safety
/// findings (at most [`MAX_FINDING_PROPERTIES`]), source, the package that shipped it.
pub fn model_facts(entry: &Value) -> Vec<(String, String)> {
    let mut facts = Vec::new();
    let mut fact = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            facts.push((format!("aiscout:{name}"), value));
        }
    };
    fact("format", scalar_at(entry, &["format"]));
    fact("size", scalar_at(entry, &["size"]));
    fact("safety:verdict", scalar_at(entry, &["safety", "verdict"]));
    fact("source:kind", scalar_at(entry, &["source", "kind"]));
    fact("group:kind", scalar_at(entry, &["group", "kind"]));
    if let Some(owner) = entry.get("owner").filter(|o| o.is_object()) {
        let part = |key: &str| text_at(owner, &[key]).unwrap_or_default().to_owned();
        fact("owner", Some(format!("{}:{}@{}", part("ecosystem"), part("name"), part("version"))));
    }
    let findings = entry.pointer("/safety/findings").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for finding in findings.iter().take(MAX_FINDING_PROPERTIES) {
        let part = |key: &str| text_at(finding, &[key]).unwrap_or_default();
        fact("safety:finding", Some(format!("{} {}: {}", part("severity"), part("kind"), part("subject"))));
    }
    facts
}

/// The `machine-learning-model` component of a model entry, with `extra` properties (the
/// collector's fleet facts and findings).
pub fn model_component(bom_ref: &str, digest: &str, entry: &Value, extra: Vec<(String, String)>) -> Value {
    let mut c = Map::new();
    c.insert("type".into(), json!("machine-learning-model"));
    c.insert("bom-ref".into(), json!(bom_ref));
    c.insert("name".into(), json!(model_name(entry)));
    if let Some(revision) = text_at(entry, &["source", "revision"]) {
        c.insert("version".into(), json!(revision));
    }
    // A directory model's and a group's digest is a tree digest, not a file's SHA-256: it is
    // named as a property, and `hashes` carries only a file's own.
    if !is_tree_digest(entry) {
        c.insert("hashes".into(), json!([{"alg": "SHA-256", "content": digest}]));
    }
    c.insert("purl".into(), json!(model_purl(entry, digest)));
    if let Some(license) = text_at(entry, &["metadata", "license"]) {
        c.insert("licenses".into(), json!([{"license": {"name": license}}]));
    }
    let mut parameters = Map::new();
    if let Some(arch) = text_at(entry, &["metadata", "architecture"]) {
        parameters.insert("architectureFamily".into(), json!(arch));
        parameters.insert("modelArchitecture".into(), json!(arch));
    }
    let card_facts = [
        ("parameters", scalar_at(entry, &["metadata", "parameters"])),
        ("quantization", scalar_at(entry, &["metadata", "quantization"])),
        ("context_length", scalar_at(entry, &["metadata", "context_length"])),
        ("tensor_count", scalar_at(entry, &["metadata", "tensor_count"])),
    ];
    let card_properties =
        properties(card_facts.into_iter().filter_map(|(k, v)| v.map(|v| (format!("aiscout:model:{k}"), v))));
    if !parameters.is_empty() || !card_properties.is_empty() {
        let mut card = Map::new();
        card.insert("bom-ref".into(), json!(format!("{bom_ref}#model-card")));
        if !parameters.is_empty() {
            card.insert("modelParameters".into(), Value::Object(parameters));
        }
        if !card_properties.is_empty() {
            card.insert("properties".into(), Value::Array(card_properties));
        }
        c.insert("modelCard".into(), Value::Object(card));
    }
    let mut facts = model_facts(entry);
    if is_tree_digest(entry) {
        facts.push(("aiscout:tree_digest".into(), digest.to_owned()));
    }
    facts.extend(extra);
    c.insert("properties".into(), Value::Array(properties(facts)));
    Value::Object(c)
}

/// The `library` component of a framework entry.
pub fn framework_component(bom_ref: &str, entry: &Value, extra: Vec<(String, String)>) -> Value {
    let mut c = Map::new();
    c.insert("type".into(), json!("library"));
    c.insert("bom-ref".into(), json!(bom_ref));
    c.insert("name".into(), json!(text_at(entry, &["name"]).unwrap_or("unknown")));
    if let Some(version) = text_at(entry, &["version"]) {
        c.insert("version".into(), json!(version));
    }
    if let Some(purl) = framework_purl(entry) {
        c.insert("purl".into(), json!(purl));
    }
    let mut facts = vec![
        ("aiscout:ecosystem".to_owned(), scalar_at(entry, &["ecosystem"]).unwrap_or_default()),
        ("aiscout:category".to_owned(), scalar_at(entry, &["category"]).unwrap_or_default()),
    ];
    if entry.get("gpu_build").and_then(Value::as_bool) == Some(true) {
        facts.push(("aiscout:gpu_build".into(), "true".into()));
    }
    facts.extend(extra);
    c.insert("properties".into(), Value::Array(properties(facts)));
    Value::Object(c)
}

/// The `device` component of a host: `facts` is the scan's `host` object, `identity` the
/// identity facts the agent stated at enrollment (machine id, serial, MAC addresses), if known.
pub fn host_component(bom_ref: &str, hostname: &str, facts: &Value, extra: Vec<(String, String)>) -> Value {
    let mut pairs = Vec::new();
    for key in ["os", "kernel", "arch", "agent_version"] {
        if let Some(value) = scalar_at(facts, &[key]) {
            pairs.push((format!("aiscout:host:{key}"), value));
        }
    }
    let addresses = facts.get("ip_addresses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for address in addresses.iter().filter_map(Value::as_str).take(64) {
        pairs.push(("aiscout:host:ip_address".into(), address.to_owned()));
    }
    pairs.extend(extra);
    json!({"type": "device", "bom-ref": bom_ref, "name": hostname, "properties": properties(pairs)})
}

/// How a server's authentication looks from its entry: `Some(true)` when a key or token is
/// configured or the server asks for one by default, `Some(false)` when it is off or the server
/// asks for none, `None` when nothing tells.
pub fn server_authenticated(entry: &Value) -> Option<bool> {
    match text_at(entry, &["auth", "state"])? {
        "configured" => Some(true),
        "disabled" => Some(false),
        "default" => match text_at(entry, &["auth", "server_default"])? {
            "none" => Some(false),
            "token" | "password" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// The sockets a server listens on, as `tcp://address:port` endpoints (IPv6 in brackets), with
/// the widest exposure among them.
fn endpoints(entry: &Value) -> (Vec<String>, Option<&str>) {
    let mut out = Vec::new();
    let mut widest = None;
    let rank = |e: &str| match e {
        "all_interfaces" => 3,
        "specific" => 2,
        "loopback" => 1,
        _ => 0,
    };
    let sockets = entry.get("listening").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for socket in sockets.iter().take(64) {
        let (Some(address), Some(port)) = (text_at(socket, &["address"]), socket.get("port").and_then(Value::as_u64))
        else {
            continue;
        };
        let host = if address.contains(':') { format!("[{address}]") } else { address.to_owned() };
        let endpoint = format!("tcp://{host}:{port}");
        if !out.contains(&endpoint) {
            out.push(endpoint);
        }
        let exposure = text_at(socket, &["exposure"]);
        if exposure.map_or(0, rank) > widest.map_or(0, rank) {
            widest = exposure;
        }
    }
    (out, widest)
}

/// A running server's `service`: its endpoints, whether it authenticates, and where it runs.
pub fn server_service(bom_ref: &str, entry: &Value, extra: Vec<(String, String)>) -> Value {
    let mut s = Map::new();
    s.insert("bom-ref".into(), json!(bom_ref));
    s.insert("name".into(), json!(text_at(entry, &["kind"]).unwrap_or("ml-process")));
    if let Some(version) = text_at(entry, &["identity", "version"]) {
        s.insert("version".into(), json!(version));
    }
    let (endpoints, exposure) = endpoints(entry);
    if !endpoints.is_empty() {
        s.insert("endpoints".into(), json!(endpoints));
    }
    if let Some(authenticated) = server_authenticated(entry) {
        s.insert("authenticated".into(), json!(authenticated));
    }
    if let Some(exposure) = exposure {
        // Listening beyond loopback crosses the host's trust boundary.
        s.insert("x-trust-boundary".into(), json!(exposure != "loopback"));
    }
    let mut pairs = vec![
        ("aiscout:runtime:exe".to_owned(), scalar_at(entry, &["exe"]).unwrap_or_default()),
        ("aiscout:runtime:user".to_owned(), scalar_at(entry, &["user"]).unwrap_or_default()),
        ("aiscout:runtime:exposure".to_owned(), exposure.unwrap_or_default().to_owned()),
        ("aiscout:runtime:auth".to_owned(), scalar_at(entry, &["auth", "state"]).unwrap_or_default()),
    ];
    let findings = entry.get("findings").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for finding in findings.iter().filter_map(Value::as_str).take(MAX_FINDING_PROPERTIES) {
        pairs.push(("aiscout:runtime:finding".into(), finding.to_owned()));
    }
    pairs.extend(extra);
    s.insert("properties".into(), Value::Array(properties(pairs)));
    Value::Object(s)
}

/// At most this many open model files of one process are matched to models: an agent can say
/// a process holds thousands.
pub const MAX_OPEN_MODELS: usize = 64;

/// The `key` of each model file a process has open or mapped (the first
/// [`MAX_OPEN_MODELS`]), sorted and distinct.
fn open_models(entry: &Value, key: &str) -> Vec<String> {
    let open = entry.get("open_models").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut out: Vec<String> =
        open.iter().take(MAX_OPEN_MODELS).filter_map(|m| text_at(m, &[key])).map(str::to_owned).collect();
    out.sort();
    out.dedup();
    out
}

/// The `sha256` (lowercase) of each model file a process has open or mapped.
pub fn open_model_digests(entry: &Value) -> Vec<String> {
    let mut digests: Vec<String> = open_models(entry, "sha256").iter().map(|d| d.to_ascii_lowercase()).collect();
    digests.dedup();
    digests
}

/// The paths of the model files a process has open or mapped.
pub fn open_model_paths(entry: &Value) -> Vec<String> {
    open_models(entry, "path")
}

/// Whether a runtime entry is a server worth a `service`: a known server, or any process that
/// listens on a port.
pub fn is_server(entry: &Value) -> bool {
    text_at(entry, &["kind"]).is_some_and(|k| k != "ml-process")
        || entry.get("listening").and_then(Value::as_array).is_some_and(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut BomWriter<Vec<u8>>) -> io::Result<()>) -> Value {
        let header = BomHeader::new([7; 16], "2026-12-05T00:00:00Z".into(), "t", "1");
        let mut w = BomWriter::begin(Vec::new(), &header).unwrap();
        f(&mut w).unwrap();
        let bytes = w.finish().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn sections_are_written_in_order_and_empty_ones_left_out() {
        let doc = written(|w| {
            w.component(&json!({"type": "device", "name": "a"}))?;
            w.component(&json!({"type": "device", "name": "b"}))?;
            w.dependency("x", &["y".into()])?;
            w.dependency("z", &[])
        });
        assert_eq!(doc["components"].as_array().map(Vec::len), Some(2));
        assert!(doc.get("services").is_none());
        assert_eq!(doc["dependencies"], json!([{"ref": "x", "dependsOn": ["y"]}]));
        assert_eq!(doc["specVersion"], "1.6");
        assert!(doc["serialNumber"].as_str().is_some_and(|s| s.starts_with("urn:uuid:") && s.len() == 45));
    }

    #[test]
    fn an_item_after_a_later_section_is_refused() {
        let header = BomHeader::new([0; 16], "t".into(), "t", "1");
        let mut w = BomWriter::begin(Vec::new(), &header).unwrap();
        assert!(w.service(&json!({"name": "s"})).is_ok());
        assert!(w.component(&json!({"name": "c"})).is_err());
    }

    #[test]
    fn purls_follow_the_purl_types() {
        let hf = json!({"source": {"kind": "huggingface", "repo": "TheBloke/Llama-2-7B-GGUF", "revision": "ABC123"}});
        assert_eq!(model_purl(&hf, "00"), "pkg:huggingface/TheBloke/Llama-2-7B-GGUF@abc123");
        let plain = json!({"path": "/srv/models/my model.gguf"});
        assert_eq!(model_purl(&plain, "ab"), "pkg:generic/my%20model.gguf?checksum=sha256:ab");
        let torch = json!({"ecosystem": "pypi", "name": "Torch_Audio", "version": "2.3.0+cu121"});
        assert_eq!(framework_purl(&torch).as_deref(), Some("pkg:pypi/torch-audio@2.3.0%2Bcu121"));
        let scoped = json!({"ecosystem": "npm", "name": "@langchain/core", "version": "^0.2.1"});
        assert_eq!(framework_purl(&scoped).as_deref(), Some("pkg:npm/%40langchain/core"));
        let conda = json!({"ecosystem": "conda", "name": "pytorch", "version": "2.1.0"});
        assert_eq!(framework_purl(&conda).as_deref(), Some("pkg:conda/pytorch@2.1.0"));
    }

    #[test]
    fn a_hostile_name_stays_inside_its_json_string() {
        let entry = json!({"metadata": {"name": "x\",\"type\":\"library"}, "sha256": "a".repeat(64)});
        let c = model_component("model:a", &"a".repeat(64), &entry, Vec::new());
        assert_eq!(c["type"], "machine-learning-model");
        assert_eq!(c["name"], "x\",\"type\":\"library");
    }

    #[test]
    fn authentication_is_told_only_when_the_entry_tells_it() {
        assert_eq!(server_authenticated(&json!({"auth": {"state": "configured"}})), Some(true));
        assert_eq!(server_authenticated(&json!({"auth": {"state": "default", "server_default": "none"}})), Some(false));
        assert_eq!(server_authenticated(&json!({"auth": {"state": "disabled"}})), Some(false));
        assert_eq!(server_authenticated(&json!({})), None);
    }
}
