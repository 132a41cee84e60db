//! Shell words: a `sh -c` string or a variable holding a command line split into words with
//! where each lies in the text; and the name a dotenv or profile line assigns.

/// One word of a command line: where its text lies in its string (`owner`, inside the quotes
/// when the whole word is one quoted string) and its text without quotes.
#[derive(Debug, Clone)]
pub(super) struct Word {
    /// Which string of a command line the word is in.
    pub owner: usize,
    /// Byte range of the word in its string.
    pub start: usize,
    pub end: usize,
    /// The word without its quotes and escapes; `;` for a command separator.
    pub text: String,
}

impl Word {
    /// Whether the word separates commands (`;`, `&&`, `|`, a newline).
    pub fn is_separator(&self) -> bool {
        self.start == self.end && self.text == ";"
    }
}

/// The words of `s` as a POSIX shell splits them: blanks separate words, `'…'` is literal,
/// `"…"` and `\` escape; `;`, `&`, `|`, `(`, `)` and newlines separate commands.
pub(super) fn split(s: &str, owner: usize) -> Vec<Word> {
    let mut words = Vec::new();
    let mut text = String::new();
    let mut start: Option<usize> = None;
    let mut chars = s.char_indices().peekable();
    let finish = |words: &mut Vec<Word>, text: &mut String, start: &mut Option<usize>, end: usize| {
        if let Some(st) = start.take() {
            let (st, en) = inside_quotes(s, st, end);
            words.push(Word { owner, start: st, end: en, text: std::mem::take(text) });
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' => finish(&mut words, &mut text, &mut start, i),
            '\n' | ';' | '&' | '|' | '(' | ')' => {
                finish(&mut words, &mut text, &mut start, i);
                words.push(Word { owner, start: i, end: i, text: ";".to_string() });
            }
            '\'' | '"' => {
                start.get_or_insert(i);
                let mut escaped = false;
                for (_, q) in chars.by_ref() {
                    if q == c && !escaped {
                        break;
                    }
                    escaped = c == '"' && q == '\\' && !escaped;
                    if !escaped {
                        text.push(q);
                    }
                }
            }
            '\\' => {
                start.get_or_insert(i);
                if let Some((_, n)) = chars.next() {
                    text.push(n);
                }
            }
            _ => {
                start.get_or_insert(i);
                text.push(c);
            }
        }
    }
    finish(&mut words, &mut text, &mut start, s.len());
    words
}

/// The range inside the quotes when `s[start..end]` is one quoted string, else the range.
fn inside_quotes(s: &str, start: usize, end: usize) -> (usize, usize) {
    let raw = s.get(start..end).unwrap_or_default();
    for q in ['\'', '"'] {
        if raw.len() >= 2 && raw.starts_with(q) && raw.ends_with(q) && raw.matches(q).count() == 2 {
            return (start + 1, end - 1);
        }
    }
    (start, end)
}

/// Whether a (`KEY=value`) line of a dotenv file or shell profile sets a variable, and its name:
/// `export OPENAI_API_KEY=...`, `OPENAI_API_KEY="..."`, `set -x OPENAI_API_KEY ...` (fish).
pub fn assigned_name(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.starts_with('#') {
        return None;
    }
    let mut line = line;
    for keyword in ["export ", "declare ", "typeset ", "local ", "readonly "] {
        if let Some(rest) = line.strip_prefix(keyword) {
            // `declare -x NAME=…`: options come before the name.
            line = rest.trim_start();
            while let Some(opt) = line.strip_prefix('-') {
                line = opt.split_once(char::is_whitespace).map(|(_, r)| r.trim_start()).unwrap_or("");
            }
        }
    }
    let name = if let Some(fish) = line.strip_prefix("set ") {
        fish.split_whitespace().find(|w| !w.starts_with('-'))?
    } else if let Some(csh) = line.strip_prefix("setenv ") {
        csh.split_whitespace().next()?
    } else {
        line.split_once('=')?.0
    };
    let valid = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    valid.then_some(name)
}
