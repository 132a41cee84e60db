//! CSV and JSON lines: one row per asset or per sighting, with the stable columns of
//! docs/exports.md (new columns are added at the end, never renamed or moved).
//!
//! CSV is RFC 4180 (the `csv` crate quotes what needs quoting) and spreadsheet-safe: a text cell
//! that a spreadsheet would read as a formula (it starts, after any spaces, with `=`, `+`, `-`,
//! `@`, a tab, a carriage return, or their full-width forms) gets a leading `'`, as OWASP
//! advises, so an agent that names a model `=HYPERLINK(…)` cannot run anything on the analyst's
//! machine. Number columns are written as numbers and never prefixed. JSON lines carry the values
//! unchanged (escaping would corrupt them for the programs that read JSON) with the same keys.

use std::io::Write;

use aiscout_proto::bom;
use serde_json::{Map, Value};

use super::{entry, for_each_asset, for_each_sighting, ExportError, ExportRequest, ExportSummary, FindingsIndex, Rows};
use crate::store::{AssetKind, AssetSummary, ExportSighting, Store, Verdict};

/// The asset columns, in order.
pub const ASSET_COLUMNS: [&str; 20] = [
    "asset_id",
    "kind",
    "name",
    "version",
    "type",
    "sha256",
    "purl",
    "verdict",
    "owned",
    "live_hosts",
    "live_sightings",
    "first_seen",
    "last_seen",
    "source",
    "architecture",
    "parameters",
    "quantization",
    "license",
    "findings",
    "hostnames",
];

/// The sighting columns, in order.
pub const SIGHTING_COLUMNS: [&str; 15] = [
    "asset_id",
    "kind",
    "agent_id",
    "hostname",
    "location",
    "name",
    "version",
    "type",
    "sha256",
    "verdict",
    "first_seen",
    "last_seen",
    "removed_at",
    "listening",
    "auth",
];

/// One cell.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    /// Text from an agent or the store (escaped in CSV).
    Text(String),
    /// A count.
    Number(u64),
    /// A flag.
    Flag(bool),
    /// Nothing known.
    Empty,
}

impl Cell {
    fn text(value: Option<impl Into<String>>) -> Self {
        value.map_or(Self::Empty, |v| Self::Text(v.into()))
    }

    fn csv(&self) -> String {
        match self {
            Self::Text(t) => spreadsheet_safe(t),
            Self::Number(n) => n.to_string(),
            Self::Flag(b) => b.to_string(),
            Self::Empty => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Self::Text(t) => Value::String(t.clone()),
            Self::Number(n) => Value::from(*n),
            Self::Flag(b) => Value::Bool(*b),
            Self::Empty => Value::Null,
        }
    }
}

/// `text` as a spreadsheet shows it and never evaluates it (module docs).
pub fn spreadsheet_safe(text: &str) -> String {
    let starts_formula =
        |c: char| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r' | '\u{FF1D}' | '\u{FF0B}' | '\u{FF0D}' | '\u{FF20}');
    let first = text.chars().next();
    let first_visible = text.trim_start_matches(' ').chars().next();
    if first.is_some_and(starts_formula) || first_visible.is_some_and(starts_formula) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// RFC 3339 (UTC, milliseconds) of a store time.
fn time_cell(ms: Option<i64>) -> Cell {
    Cell::text(ms.map(crate::rfc3339_ms))
}

/// The name, version and type (docs/exports.md) of an entry of `kind`.
fn describe(kind: AssetKind, e: &Value) -> (Cell, Cell, Cell) {
    let text = |path: &[&str]| Cell::text(bom::text_at(e, path));
    match kind {
        AssetKind::Model => (Cell::Text(bom::model_name(e)), text(&["source", "revision"]), text(&["format"])),
        AssetKind::Framework => (text(&["name"]), text(&["version"]), text(&["ecosystem"])),
        AssetKind::Runtime => (text(&["kind"]), text(&["identity", "version"]), Cell::Text("runtime".into())),
        AssetKind::Tooling => {
            let name = bom::text_at(e, &["variable"]).or_else(|| bom::text_at(e, &["client"]));
            (Cell::text(name), Cell::Empty, text(&["kind"]))
        }
    }
}

fn verdict_cell(verdict: Option<Verdict>) -> Cell {
    Cell::text(verdict.map(|v| v.as_str()))
}

fn asset_row(asset: &AssetSummary, findings: &FindingsIndex) -> Vec<Cell> {
    let e = super::latest_entry(asset);
    let text = |path: &[&str]| Cell::text(bom::text_at(&e, path));
    let (name, version, kind_type) = describe(asset.kind, &e);
    let (sha256, purl) = match asset.kind {
        AssetKind::Model => {
            let digest = asset.identity.clone();
            (Cell::Text(digest.clone()), Cell::Text(bom::model_purl(&e, &digest)))
        }
        AssetKind::Framework => (Cell::Empty, Cell::text(bom::framework_purl(&e))),
        _ => (Cell::Empty, Cell::Empty),
    };
    let number = |path: &[&str]| match path.iter().try_fold(&e, |v, k| v.get(k)).and_then(Value::as_u64) {
        Some(n) => Cell::Number(n),
        None => Cell::Empty,
    };
    let standing = findings.of(&asset.id);
    let findings = if standing.is_empty() {
        Cell::Empty
    } else {
        Cell::Text(
            standing.iter().map(|(rule, severity, _)| format!("{rule}:{severity}")).collect::<Vec<_>>().join(" "),
        )
    };
    vec![
        Cell::Text(asset.id.clone()),
        Cell::Text(asset.kind.as_str().to_owned()),
        name,
        version,
        kind_type,
        sha256,
        purl,
        verdict_cell(asset.verdict),
        Cell::Flag(asset.owned),
        Cell::Number(asset.live_hosts),
        Cell::Number(asset.live_sightings),
        time_cell(Some(asset.first_seen_ms)),
        time_cell(Some(asset.last_seen_ms)),
        text(&["source", "kind"]),
        text(&["metadata", "architecture"]),
        number(&["metadata", "parameters"]),
        text(&["metadata", "quantization"]),
        text(&["metadata", "license"]),
        findings,
        Cell::Text(asset.hostnames.join(" ")),
    ]
}

fn sighting_row(s: &ExportSighting) -> Vec<Cell> {
    let e = entry(&s.entry_json);
    let (name, version, kind_type) = describe(s.kind, &e);
    let sockets = e.get("listening").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let listening = sockets
        .iter()
        .filter_map(|l| {
            let address = bom::text_at(l, &["address"])?;
            let port = l.get("port").and_then(Value::as_u64)?;
            Some(format!("{address}:{port}/{}", bom::text_at(l, &["exposure"]).unwrap_or("unknown")))
        })
        .collect::<Vec<_>>();
    vec![
        Cell::Text(s.key.asset_id.clone()),
        Cell::Text(s.kind.as_str().to_owned()),
        Cell::Text(s.key.agent_id.clone()),
        Cell::Text(s.hostname.clone()),
        Cell::Text(s.location.clone()),
        name,
        version,
        kind_type,
        Cell::text(bom::text_at(&e, &["sha256"])),
        verdict_cell(s.verdict),
        time_cell(Some(s.first_seen_ms)),
        time_cell(Some(s.last_seen_ms)),
        time_cell(s.removed_at_ms),
        if listening.is_empty() { Cell::Empty } else { Cell::Text(listening.join(" ")) },
        Cell::text(bom::text_at(&e, &["auth", "state"])),
    ]
}

/// Writes rows as CSV (with a header) or JSON lines.
struct RowWriter<'w> {
    /// CSV, when the format is CSV.
    csv: Option<csv::Writer<&'w mut dyn Write>>,
    /// JSON lines otherwise.
    jsonl: Option<&'w mut dyn Write>,
    /// The column names.
    columns: &'static [&'static str],
    /// Rows written.
    rows: u64,
}

impl<'w> RowWriter<'w> {
    fn new(as_csv: bool, columns: &'static [&'static str], out: &'w mut dyn Write) -> Result<Self, ExportError> {
        if as_csv {
            let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(out);
            csv.write_record(columns).map_err(csv_error)?;
            Ok(Self { csv: Some(csv), jsonl: None, columns, rows: 0 })
        } else {
            Ok(Self { csv: None, jsonl: Some(out), columns, rows: 0 })
        }
    }

    fn row(&mut self, cells: &[Cell]) -> Result<(), ExportError> {
        if let Some(csv) = &mut self.csv {
            csv.write_record(cells.iter().map(Cell::csv)).map_err(csv_error)?;
        } else if let Some(out) = &mut self.jsonl {
            let object: Map<String, Value> =
                self.columns.iter().zip(cells).map(|(name, cell)| ((*name).to_owned(), cell.json())).collect();
            serde_json::to_writer(&mut **out, &object).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        self.rows += 1;
        Ok(())
    }

    fn finish(self) -> Result<u64, ExportError> {
        if let Some(mut csv) = self.csv {
            csv.flush()?;
        }
        Ok(self.rows)
    }
}

fn csv_error(e: csv::Error) -> ExportError {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => ExportError::Write(e),
        other => ExportError::Write(std::io::Error::other(format!("{other:?}"))),
    }
}

/// Writes the CSV or JSON-lines export.
pub(super) fn write(
    store: &dyn Store,
    request: &ExportRequest,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let as_csv = request.format == super::Format::Csv;
    let rows = match request.rows {
        Rows::Assets => {
            let findings = FindingsIndex::read(store, request)?;
            let mut w = RowWriter::new(as_csv, &ASSET_COLUMNS, out)?;
            for_each_asset(store, request, request.kind, |a| w.row(&asset_row(a, &findings)))?;
            w.finish()?
        }
        Rows::Sightings => {
            let mut w = RowWriter::new(as_csv, &SIGHTING_COLUMNS, out)?;
            for_each_sighting(store, request, request.kind, |s| w.row(&sighting_row(s)))?;
            w.finish()?
        }
    };
    Ok(ExportSummary { items: rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_plain_text_is_kept() {
        for hostile in ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "  =1", "\u{FF1D}1"] {
            assert!(spreadsheet_safe(hostile).starts_with('\''), "{hostile:?}");
        }
        for plain in ["llama-3.gguf", "/srv/models/x", "a=b", "", "torch"] {
            assert_eq!(spreadsheet_safe(plain), plain);
        }
    }

    #[test]
    fn numbers_are_never_prefixed() {
        assert_eq!(Cell::Number(42).csv(), "42");
        assert_eq!(Cell::Text("-42".into()).csv(), "'-42");
    }
}
