//! Agent-supplied text on its way into a log line.
//!
//! Every string an agent sends (hostnames, versions, local keys, paths, reasons built from
//! them) may be hostile: a newline forges a log line, an escape sequence rewrites a terminal,
//! a bidirectional override hides text, a megabyte fills the journal. [`text`] wraps such a
//! string for `tracing` fields (`hostname = %untrusted::text(&h)`):
//! 1. control characters (C0, DEL, C1) and the Unicode bidirectional controls are written as
//!    `\u{..}` escapes; everything else is kept;
//! 2. at most [`MAX_CHARS`] characters are written, then `…(+N bytes)`.

use std::fmt;

/// Characters of one untrusted value written to a log line.
pub const MAX_CHARS: usize = 200;

/// `value`, escaped and cut for a log line (module docs).
pub fn text(value: &str) -> Untrusted<'_> {
    Untrusted(value)
}

/// A string displayed escaped and cut ([`text`]).
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(&'a str);

/// Unicode's explicit bidirectional formatting characters (they reorder what a terminal shows).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (written, (at, c)) in self.0.char_indices().enumerate() {
            if written == MAX_CHARS {
                return write!(f, "…(+{} bytes)", self.0.len() - at);
            }
            if c.is_control() || is_bidi_control(c) {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_long_values_cut() {
        let forged = "gpu-07\n2026-12-04T00:00:00Z  INFO agent revoked\r\x1b[2J\u{202e}txt.exe\u{7f}\u{85}";
        let shown = text(forged).to_string();
        assert!(!shown.chars().any(|c| c.is_control() || is_bidi_control(c)), "{shown:?}");
        assert!(shown.starts_with("gpu-07\\u{a}2026"), "{shown}");
        assert!(shown.contains("\\u{1b}[2J\\u{202e}txt.exe\\u{7f}\\u{85}"), "{shown}");
        assert_eq!(text("plain host-1 ünïcode").to_string(), "plain host-1 ünïcode");

        let huge = "h".repeat(4 << 20);
        let shown = text(&huge).to_string();
        assert!(shown.len() < MAX_CHARS + 32, "{} bytes", shown.len());
        assert!(shown.ends_with(&format!("…(+{} bytes)", (4 << 20) - MAX_CHARS)), "{shown}");
        let wide = "é".repeat(MAX_CHARS + 1);
        assert_eq!(text(&wide).to_string(), format!("{}…(+2 bytes)", "é".repeat(MAX_CHARS)));
    }
}
