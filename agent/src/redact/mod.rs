//! Redaction: keeps secret values out of everything the agent reports.
//!
//! Command lines, environments, MCP server arguments and URLs are reported so that a security
//! team can see what runs; the secrets in them must never leave the host. Values are judged,
//! not only names. Every string goes through all of these rules, and whatever any rule marks
//! is replaced by [`MARKER`]:
//! 1. **Secret names** ([`is_secret_name`]): an option, variable, parameter or header whose
//!    name has a secret word (`key`, `token`, `secret`, `password`, `passwd`, `pwd`,
//!    `passphrase`, `credential`, `auth`, `private`, `cookie`, `session`, `signature`, plurals
//!    `…_KEYS`, `…_SECRETS`, `…_PASSWORDS`, `…_HEADERS`, compounds `authtoken`,
//!    `accesstoken`, `secretkey`, …) has its value hidden, unless the name ends in a word that
//!    names something about the secret (`KEY_FILE`, `TOKEN_LIMIT`, `--api-key-header`) or
//!    counts tokens (`--max-tokens`), or the value is harmless: a switch (`true`, `none`), a
//!    reference (`$OPENAI_API_KEY`, `${env:X}`) or a file path.
//! 2. **Command lines** ([`cmdline`], and any text holding one, split as a shell would):
//!    `--opt value`, `-opt value`, `--opt=value`, `-Dname=value`, `NAME=value` with a secret
//!    name (boolean flags such as `--no-auth` take no value); curl-style `-u user:password`,
//!    `--user`, `--proxy-user` (the password); `-pSECRET` of mysql/mariadb, `sshpass -p`,
//!    `docker`/`podman`/`helm` `login -p`, `redis-cli -a`; a glued curl header (`-HCookie:`).
//!    Words of a `sh -c` string, or of a variable holding a command line (`COMMANDLINE_ARGS`,
//!    `*_ARGS`, `*_OPTS`, `NODE_OPTIONS`, `*_CONFIG`), follow the same rules, nested up to
//!    [`MAX_DEPTH`] levels.
//! 3. **Pairs anywhere in a text**: `name=value`, `name: value`, `"name": "value"` (JSON,
//!    YAML), `Header: value` with a secret name; connection strings (`Password=…;`, `Pwd=`,
//!    `AccountKey=`, `{…}` values); after `?`, `&`, `#` or `;` also `sig`, `code`, `key`,
//!    `token`, `X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`, … (Azure SAS
//!    strings); a header of any name whose value is `Bearer x`, `Basic x` or random-looking;
//!    the word after `Bearer ` or `Basic ` anywhere.
//! 4. **URLs anywhere in a text**: the user-info (up to the last `@` before the host, so a
//!    password may hold `/`, `@` or `%`-escapes), secret query and fragment parameters (rule 3's
//!    names, or a token-shaped value), and the secret path of webhook and bot URLs (Slack,
//!    Discord, Teams, Telegram `bot<token>`, Zapier, IFTTT, a random segment after `hooks/`);
//!    outside a URL, the password of `user:password@host` (Go DSNs `u:pw@tcp(db:3306)/app`).
//! 5. **Token shapes wherever they appear** ([`looks_like_token`]): the prefixes of
//!    well-known credential formats (OpenAI `sk-`/`sk-proj-`, Anthropic `sk-ant-`, Hugging Face
//!    `hf_`, GitHub `ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_`/`github_pat_`, GitLab `glpat-`, Slack
//!    `xox[abprs]-`/`xapp-`, npm `npm_`, PyPI `pypi-`, Stripe `sk_live_`/`rk_live_`, Google
//!    `AIza`/`ya29.`/`GOCSPX-`, AWS `AKIA`/`ASIA`, Groq, Replicate, NVIDIA, xAI, …) with a long
//!    body (digits, mixed case or one unbroken run), JWTs (`eyJ….eyJ….…`), and PEM private
//!    keys up to their END line.
//! 6. **Bounded work**: a string longer than [`MAX_TEXT`] bytes, the part of a command line
//!    past [`MAX_CMDLINE`] bytes, and the rest of a text past 256 URLs are hidden whole. Every
//!    rule is one pass over its text; nothing here panics or slices inside a character.
//!
//! Names are always kept: which flags and variables exist is what the inventory needs; model
//! paths, ports, hosts and harmless values stay readable.
//!
//! # Layout
//! `names.rs` (rule 1), `argv.rs` (2), `shell.rs` (shell words, dotenv assignments),
//! `pairs.rs` (3), `urls.rs` (4), `tokens.rs` (5), `tests.rs` (the table of cases and the
//! property tests).

mod argv;
mod names;
mod pairs;
mod shell;
mod tokens;
mod urls;

#[cfg(test)]
mod tests;

pub use names::is_secret_name;
pub use shell::assigned_name;
pub use tokens::looks_like_token;

/// What a secret value is replaced with.
pub const MARKER: &str = "<redacted>";

/// Longest string judged; a longer one is replaced whole.
pub const MAX_TEXT: usize = 256 * 1024;

/// Most bytes of a command line judged; arguments past them are replaced whole.
pub const MAX_CMDLINE: usize = 2 * 1024 * 1024;

/// Deepest nesting of shell strings looked into (`sh -c "bash -c '…'"`).
pub const MAX_DEPTH: usize = 4;

/// Byte ranges of a string to hide, relative to `base`.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    list: Vec<(usize, usize)>,
    base: usize,
}

impl Spans {
    fn add(&mut self, start: usize, end: usize) {
        if end > start {
            self.list.push((self.base + start, self.base + end));
        }
    }

    /// `s` with every span replaced by [`MARKER`] (overlapping and touching spans once).
    fn apply(mut self, s: &str) -> String {
        if self.list.is_empty() {
            return s.to_string();
        }
        self.list.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.list.len());
        for (start, end) in self.list {
            let (start, end) = (floor_boundary(s, start), ceil_boundary(s, end));
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        for (start, end) in merged {
            out.push_str(s.get(at..start).unwrap_or_default());
            out.push_str(MARKER);
            at = end;
        }
        out.push_str(s.get(at..).unwrap_or_default());
        out
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Marks what rules 2 to 5 hide in `s` (shell words when `words`), into `spans`.
fn scrub(s: &str, spans: &mut Spans, depth: usize, words: bool) {
    urls::find(s, spans);
    urls::find_bare(s, spans);
    tokens::find(s, spans);
    pairs::find(s, spans);
    if !words || depth >= MAX_DEPTH {
        return;
    }
    let split = shell::split(s, 0);
    for (_, start, end) in argv::rules(&split, |w| s.get(w.start..w.end).unwrap_or_default()) {
        spans.add(start, end);
    }
    for w in &split {
        if w.text.contains(char::is_whitespace) {
            if let Some(inner) = s.get(w.start..w.end) {
                let saved = spans.base;
                spans.base += w.start;
                scrub(inner, spans, depth + 1, true);
                spans.base = saved;
            }
        }
    }
}

/// `text` with every secret replaced: URLs, tokens, pairs, and the words of a command line in
/// it (rules 2 to 5). For free text: an MCP server's URL, an environment value.
pub fn text(text: &str) -> String {
    if text.len() > MAX_TEXT {
        return MARKER.to_string();
    }
    let mut spans = Spans::default();
    scrub(text, &mut spans, 0, true);
    spans.apply(text)
}

/// A value as reported under `name` (an environment variable): the [`MARKER`] when the name is
/// secret and the value not harmless (rule 1), else [`text`] of it.
pub fn value(name: &str, value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    if pairs::secret_pair_name(name) && !names::is_harmless_value(value) {
        return MARKER.to_string();
    }
    text(value)
}

/// A command line with secret values replaced: every rule of the module doc, across arguments
/// (`--api-key X`) and inside each (`sh -c '…'`, `--header 'Authorization: …'`).
pub fn cmdline(args: &[String]) -> Vec<String> {
    let mut budget = MAX_CMDLINE;
    let mut spans: Vec<Spans> = Vec::with_capacity(args.len());
    let mut whole = vec![false; args.len()];
    for (i, arg) in args.iter().enumerate() {
        let mut s = Spans::default();
        if arg.len() > MAX_TEXT || arg.len() > budget {
            budget = 0;
            if let Some(w) = whole.get_mut(i) {
                *w = true;
            }
        } else {
            budget -= arg.len();
            scrub(arg, &mut s, 0, arg.contains(char::is_whitespace));
        }
        spans.push(s);
    }
    let words: Vec<shell::Word> = args
        .iter()
        .enumerate()
        .map(|(owner, a)| shell::Word { owner, start: 0, end: a.len(), text: a.clone() })
        .collect();
    for (owner, start, end) in argv::rules(&words, |w| args.get(w.owner).map_or("", String::as_str)) {
        if let Some(s) = spans.get_mut(owner) {
            s.add(start, end);
        }
    }
    args.iter()
        .zip(spans)
        .zip(whole)
        .map(|((arg, s), whole)| if whole { MARKER.to_string() } else { s.apply(arg) })
        .collect()
}
