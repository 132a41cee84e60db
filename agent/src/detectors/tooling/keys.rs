//! AI API keys by variable name: dotenv files, shell profiles and process environments.
//!
//! Every parser here turns bytes into names at once: a value is looked at only to decide
//! whether it is a literal (see [`is_literal_value`]) and is never copied.

use std::path::Path;

use super::catalog::{self, Catalog};
use super::files::{self, read_resolving_link, Origin, Oversize};
use super::{Found, FOUND_IN_PROCESS};

/// Largest part of a dotenv file or shell profile read (the rest is ignored, whole lines kept).
const MAX_TEXT_BYTES: u64 = 1024 * 1024;

/// Largest part of a process environment read (whole entries kept).
const MAX_ENVIRON_BYTES: u64 = 1024 * 1024;

/// Whether a configured value is a literal secret rather than empty, a reference or a
/// placeholder: not `$X`, `${X}`, `${input:x}`, `${env:X}`, `$(cmd)`, `` `cmd` ``, fish's
/// `(cmd)`, a `{env:X}`-style template or a `<your key>` placeholder.
pub fn is_literal_value(value: &str) -> bool {
    let v = value.trim();
    let wrapped = |open: char, close: char| v.starts_with(open) && v.ends_with(close);
    !v.is_empty() && !v.starts_with(['$', '`', '(']) && !wrapped('{', '}') && !wrapped('<', '>')
}

/// Names of the AI keys a dotenv file or shell profile assigns a literal value, sorted and
/// distinct: `NAME=value`, `export NAME="value"`, fish's `set -gx NAME value`. Lines that are
/// not UTF-8 are skipped.
pub fn key_names_in_dotenv(bytes: &[u8]) -> Vec<String> {
    let Ok(catalog) = catalog::catalog() else { return Vec::new() };
    let lines = bytes.split(|b| *b == b'\n').filter_map(|l| std::str::from_utf8(l).ok());
    let mut names: Vec<String> = lines
        .filter_map(assigned_literal)
        .filter(|name| catalog.provider_of(name).is_some())
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Names of the AI keys a process environment (`NAME=value` entries separated by NUL bytes)
/// holds with a non-empty value, sorted and distinct.
pub fn key_names_in_environ(bytes: &[u8]) -> Vec<String> {
    let Ok(catalog) = catalog::catalog() else { return Vec::new() };
    let mut names: Vec<String> = bytes
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let eq = entry.iter().position(|b| *b == b'=')?;
            let has_value = entry.get(eq + 1..).is_some_and(|v| !v.is_empty());
            let name = std::str::from_utf8(entry.get(..eq)?).ok()?;
            (has_value && catalog.provider_of(name).is_some()).then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The name a line assigns, when the value it assigns is a literal.
fn assigned_literal(line: &str) -> Option<&str> {
    let name = crate::redact::assigned_name(line)?;
    // `assigned_name` returns a part of `line`: what follows it is the value.
    let start = (name.as_ptr() as usize).checked_sub(line.as_ptr() as usize)?;
    let after = line.get(start + name.len()..)?;
    let value = after.strip_prefix('=').unwrap_or(after);
    is_literal_value(shell_word(value)).then_some(name)
}

/// The first word of a shell or dotenv value, without its quotes (up to the closing quote, or
/// the end of the line for a value that continues on the next).
fn shell_word(value: &str) -> &str {
    let v = value.trim_start();
    for quote in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(quote) {
            let mut escaped = false;
            let end = inner.char_indices().find_map(|(i, c)| {
                let closes = c == quote && !(escaped && quote == '"');
                escaped = c == '\\' && !escaped;
                closes.then_some(i)
            });
            return inner.get(..end.unwrap_or(inner.len())).unwrap_or(inner);
        }
    }
    let end = v.find(|c: char| c.is_whitespace() || c == ';').unwrap_or(v.len());
    v.get(..end).unwrap_or(v)
}

/// Reads a dotenv file or shell profile into `api_key` entries found in `found_in`. A missing
/// file is not an error.
pub(super) fn read_assignments(
    found: &mut Found,
    catalog: &Catalog,
    path: &Path,
    found_in: &'static str,
    origin: Origin,
) {
    let bytes = match files::read(path, MAX_TEXT_BYTES, Oversize::Truncate { separator: b'\n' }, origin) {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => return found.error(path, format!("{} file: {e}", found_in.replace('_', " "))),
    };
    let shown = path.display().to_string();
    for variable in key_names_in_dotenv(&bytes) {
        if let Some(provider) = catalog.provider_of(&variable) {
            found.api_key(&shown, variable, provider, found_in, None);
        }
    }
}

/// Reads `<proc_root>/<pid>/environ` of every process into `api_key` entries. Processes the
/// agent may not read (another user's, when not root) or that exit meanwhile are skipped
/// silently: the runtimes section reports restricted processes.
pub(super) fn process_environments(found: &mut Found, catalog: &Catalog, proc_root: &Path) {
    let entries = match std::fs::read_dir(proc_root) {
        Ok(e) => e,
        Err(e) => {
            tracing::debug!(path = %proc_root.display(), error = %e, "cannot list processes");
            return;
        }
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let path = entry.path().join("environ");
        let bytes = match read_resolving_link(&path, MAX_ENVIRON_BYTES, Oversize::Truncate { separator: 0 }) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e) => {
                tracing::trace!(pid, error = %e, "process environment not readable");
                continue;
            }
        };
        let shown = path.display().to_string();
        for variable in key_names_in_environ(&bytes) {
            if let Some(provider) = catalog.provider_of(&variable) {
                found.api_key(&shown, variable, provider, FOUND_IN_PROCESS, Some(pid));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_assignments_of_ai_keys_are_named() {
        let text = "export OPENAI_API_KEY=sk-x\n\
            ANTHROPIC_API_KEY=\"a b\" # quoted\r\n\
            set -gx GROQ_API_KEY abc\n\
            HF_TOKEN='hf_abc'\n\
            openai_admin_key=x\n\
            # COHERE_API_KEY=commented\n\
            MISTRAL_API_KEY=\n\
            GEMINI_API_KEY=\"\"\n\
            DEEPSEEK_API_KEY=$OTHER\n\
            XAI_API_KEY=\"${OTHER}\"\n\
            VOYAGE_API_KEY=$(pass show voyage)\n\
            PINECONE_API_KEY=<your-key>\n\
            set -e WANDB_API_KEY\n\
            OPENAI_BASE_URL=https://example.com\n\
            AWS_SECRET_ACCESS_KEY=zzz\n";
        let mut bytes = text.as_bytes().to_vec();
        bytes.extend_from_slice(b"\nTOGETHER_API_KEY=\xff\xfe\n");
        assert_eq!(
            key_names_in_dotenv(&bytes),
            ["ANTHROPIC_API_KEY", "GROQ_API_KEY", "HF_TOKEN", "OPENAI_API_KEY", "openai_admin_key"]
        );
    }

    #[test]
    fn environ_entries_with_values_are_named() {
        let env = b"PATH=/bin\0OPENAI_API_KEY=sk-1\0HF_TOKEN=\0LANGSMITH_API_KEY=l\0OPENAI_API_KEY=sk-2\0=x\0junk";
        assert_eq!(key_names_in_environ(env), ["LANGSMITH_API_KEY", "OPENAI_API_KEY"]);
    }

    #[test]
    fn shell_words_stop_at_quotes_and_spaces() {
        assert_eq!(shell_word(" \"a \\\" b\" rest"), "a \\\" b");
        assert_eq!(shell_word("'x'y"), "x");
        assert_eq!(shell_word("\"open"), "open");
        assert_eq!(shell_word("v;next"), "v");
        assert!(!is_literal_value("${input:key}"));
        assert!(!is_literal_value("{env:KEY}"));
        assert!(is_literal_value("sk-x"));
    }
}
