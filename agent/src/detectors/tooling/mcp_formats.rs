//! The file formats of MCP configurations: JSON (read as JSONC: comments, trailing commas),
//! TOML and YAML, each turned into one `serde_json::Value` for the generic server parser in
//! [`super::mcp`], which calls these functions (they know nothing of servers).
//!
//! Parse errors name the place that failed (line and column) and, for JSON, the fixed kind of
//! error; they never quote the text, which may hold a secret.

use serde_json::{Map, Number, Value};

/// Most `[` and `{` a YAML configuration may hold, and its largest size. The YAML scanner's work
/// grows with the number of tokens times the depth of flow collections (`{"a":{"a":…` of
/// 1 MiB takes minutes); configurations are a few KiB in block style, with a handful of flow
/// lists. Within both bounds the worst case parses in well under a second.
const MAX_YAML_FLOW_OPENINGS: usize = 256;
const MAX_YAML_BYTES: usize = 1024 * 1024;

/// A JSON (or JSONC) configuration as a value.
pub(super) fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    let text = utf8(bytes)?;
    jsonc_parser::parse_to_serde_value::<Value>(text, &Default::default()).map_err(|e| {
        use jsonc_parser::{errors::ParseErrorKind as K, ParseStringErrorKind as S};
        let kind = match e.kind() {
            // The only kinds whose message quotes the text: never shown.
            K::Custom(_) => "invalid value".to_string(),
            K::String(S::InvalidUnicodeEscapeSequence(_)) => "invalid unicode escape sequence".to_string(),
            k => k.to_string().to_lowercase(),
        };
        format!("invalid json at line {} column {}: {kind}", e.line_display(), e.column_display())
    })
}

/// A TOML configuration (Codex `config.toml`) as a value.
pub(super) fn parse_toml(bytes: &[u8]) -> Result<Value, String> {
    let text = utf8(bytes)?;
    toml::from_str::<Value>(text).map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        let (line, column) = line_column(text, at);
        format!("invalid toml at line {line} column {column}")
    })
}

/// A YAML configuration (Goose, Continue) as a value.
pub(super) fn parse_yaml(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_YAML_BYTES {
        return Err(format!("yaml configuration larger than {MAX_YAML_BYTES} bytes"));
    }
    if memchr::memchr2_iter(b'[', b'{', bytes).nth(MAX_YAML_FLOW_OPENINGS).is_some() {
        return Err(format!("invalid yaml: more than {MAX_YAML_FLOW_OPENINGS} `[` and `{{`"));
    }
    let doc = serde_yaml_ng::from_slice::<serde_yaml_ng::Value>(bytes).map_err(|e| match e.location() {
        Some(l) => format!("invalid yaml at line {} column {}", l.line(), l.column()),
        None => "invalid yaml".to_string(),
    })?;
    Ok(yaml_to_json(doc))
}

/// A configuration file named `file_name` as a value, parsed by its extension: `.toml`,
/// `.yaml`/`.yml`, anything else JSON.
pub(super) fn parse_by_extension(file_name: &str, bytes: &[u8]) -> Result<Value, String> {
    let ext = file_name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "toml" => parse_toml(bytes),
        "yaml" | "yml" => parse_yaml(bytes),
        _ => parse_json(bytes),
    }
}

/// `bytes` as text, without a byte-order mark.
fn utf8(bytes: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not utf-8 text (at byte {})", e.valid_up_to()))?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |l| l.chars().count());
    (before.matches('\n').count() + 1, column + 1)
}

/// A YAML value as JSON: tags dropped, scalar keys as text, other keys skipped. (Depth is
/// bounded by the YAML deserializer's recursion limit.)
fn yaml_to_json(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (_, Some(u)) => Value::from(u),
            _ => n.as_f64().and_then(Number::from_f64).map_or(Value::Null, Value::Number),
        },
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let entries = m.into_iter().filter_map(|(k, v)| {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some((key, yaml_to_json(v)))
            });
            Value::Object(entries.collect::<Map<String, Value>>())
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::tooling::{parse_mcp_config, parse_mcp_json, parse_mcp_toml, parse_mcp_yaml};

    #[test]
    fn errors_name_the_place_and_never_quote_the_text() {
        let secret = "sk-test-0123456789abcdef";
        let e = parse_mcp_json("cursor", format!("{{\"a\": \"{secret}\" \"b\"}}").as_bytes()).unwrap_err();
        assert!(e.starts_with("invalid json at line 1 column"), "{e}");
        let e = parse_mcp_toml("codex", format!("[mcp_servers.x]\nenv = {{ K = \"{secret}\" ").as_bytes()).unwrap_err();
        assert!(e.starts_with("invalid toml at line 2"), "{e}");
        assert!(!e.contains(secret));
        let e = parse_mcp_yaml("goose", format!("a: {secret}\n  b: [").as_bytes()).unwrap_err();
        assert!(e.starts_with("invalid yaml at line"), "{e}");
        assert!(!e.contains(secret));
        assert_eq!(parse_mcp_json("cursor", b"\xff{}").unwrap_err(), "not utf-8 text (at byte 0)");
    }

    #[test]
    fn formats_follow_the_extension() {
        let toml = parse_mcp_config("codex", "config.toml", b"[mcp_servers.a]\ncommand = \"x\"\n").unwrap();
        assert_eq!(toml.servers.len(), 1);
        let yaml = parse_mcp_config("continue", "c.yml", b"mcpServers:\n  - name: a\n    command: x\n").unwrap();
        assert_eq!(yaml.servers.first().map(|s| s.name.as_str()), Some("a"));
        let json =
            parse_mcp_config("cursor", "mcp.json", b"\xef\xbb\xbf{\"mcpServers\": {\"a\": {\"command\": \"x\"}}}");
        assert_eq!(json.unwrap().servers.len(), 1);
        assert!(parse_mcp_config("cursor", "mcp.json", b"").unwrap().servers.is_empty());
    }

    #[test]
    fn yaml_keys_and_tags_become_json() {
        let doc = serde_yaml_ng::from_str::<serde_yaml_ng::Value>("1: !t {x: 2.5}\ntrue: [a]\n? [k]\n: v\n").unwrap();
        assert_eq!(yaml_to_json(doc), serde_json::json!({"1": {"x": 2.5}, "true": ["a"]}));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse_mcp_json("cursor", deep.as_bytes()).is_err());
        assert!(parse_mcp_yaml("goose", deep.as_bytes()).is_err());
        assert!(parse_mcp_toml("codex", format!("a = {deep}").as_bytes()).is_err());
    }
}
