//! Names: whether an option, variable, parameter or header name says its value is secret, and
//! which values stay readable even under such a name.

/// Words that make a name secret when they are a word of it (split on `_`, `-`, `.`, spaces
/// and lower-to-upper case changes), plurals included; see also [`SECRET_ENDINGS`].
const SECRET_WORDS: &[&str] = &[
    "key",
    "keys",
    "pass",
    "pwd",
    "pw",
    "pswd",
    "pat",
    "pats",
    "credential",
    "creds",
    "auth",
    "authorization",
    "private",
    "cookie",
    "cookies",
    "session",
    "bearer",
    "signature",
    "signatures",
    "sig",
    "headers",
    "hmac",
    "otp",
];

/// Words, and endings of words, that make a name secret: `token`, and the compounds written
/// without separators (`authtoken`, `accesstoken`, `secretkey`, `clientsecret`, `dbpassword`).
const SECRET_ENDINGS: &[&str] = &[
    "token",
    "tokens",
    "secret",
    "secrets",
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "apikey",
    "apikeys",
    "authkey",
    "secretkey",
    "privatekey",
    "accesskey",
    "masterkey",
    "signingkey",
    "encryptionkey",
    "sharedkey",
    "accountkey",
    "licensekey",
    "sessionkey",
    "appkey",
    "clientkey",
    "subscriptionkey",
    "credentials",
];

/// Last words that name something about a secret rather than the secret (`KEY_FILE` names a
/// path, `TOKEN_LIMIT` a number, `API_KEY_HEADER` a header's name).
const NOT_SECRET_SUFFIXES: &[&str] = &[
    "stdin",
    "file",
    "path",
    "dir",
    "limit",
    "length",
    "len",
    "count",
    "type",
    "mode",
    "id",
    "ids",
    "name",
    "url",
    "uri",
    "host",
    "port",
    "header",
    "user",
    "username",
    "endpoint",
    "timeout",
    "ttl",
    "size",
    "bits",
    "format",
    "algorithm",
    "alg",
    "method",
    "provider",
    "scheme",
    "enabled",
    "required",
    "env",
    "var",
    "location",
    "store",
    "cmd",
    "command",
];

/// Words that make a name a count or a setting of tokens rather than a credential
/// (`--max-tokens`, `MAX_NEW_TOKENS`, `num_tokens`, `context_tokens`).
const COUNT_WORDS: &[&str] =
    &["max", "min", "num", "n", "count", "limit", "total", "context", "ctx", "window", "batch", "per", "budget"];

/// Option words that make a flag boolean (`--no-auth`, `--disable-token-auth`): such an option
/// takes no value.
const FLAG_WORDS: &[&str] = &["no", "disable", "enable", "use", "skip", "require", "allow", "with", "without", "trust"];

/// The words of a name, lowercase: `OPENAI_API_KEY` → `openai api key`, `hfToken` → `hf token`.
pub(super) fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars().take(256) {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn secret_word(word: &str) -> bool {
    SECRET_WORDS.contains(&word) || SECRET_ENDINGS.iter().any(|e| word.ends_with(e))
}

/// Whether a variable, option, parameter or header named `name` holds a secret
/// (`OPENAI_API_KEY`, `--api-key`, `hfToken`, `DB_PASSWORDS`, `authtoken`,
/// `OTEL_EXPORTER_OTLP_HEADERS`), but not `KEY_FILE`, `TOKENIZERS_PARALLELISM`, `--max-tokens`.
pub fn is_secret_name(name: &str) -> bool {
    let trimmed = name.trim_start_matches('-');
    let w = words(trimmed);
    let Some(last) = w.last() else { return false };
    if NOT_SECRET_SUFFIXES.contains(&last.as_str()) {
        // `SESSION_ID` is the session itself.
        let session_id = last == "id" && w.len() >= 2 && w.get(w.len() - 2).is_some_and(|p| p == "session");
        if !session_id {
            return false;
        }
    }
    let counted = w.iter().any(|x| COUNT_WORDS.contains(&x.as_str()));
    w.iter().any(|word| secret_word(word) && !(counted && (word == "tokens" || word == "token" || word == "keys")))
}

/// Whether an option takes no value: `--no-auth`, `--disable-token-auth`, `--use-auth-token`.
pub(super) fn is_flag_name(name: &str) -> bool {
    words(name.trim_start_matches('-')).first().is_some_and(|w| FLAG_WORDS.contains(&w.as_str()))
}

/// Query or fragment parameters that carry secrets besides the secret-named ones: signatures
/// (`sig`, `X-Amz-Signature`), OAuth codes and tokens, pre-signed URL credentials.
const QUERY_SECRETS: &[&str] = &[
    "sig",
    "signature",
    "code",
    "key",
    "token",
    "secret",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "api_key",
    "apikey",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "awsaccesskeyid",
    "ticket",
    "otp",
    "auth",
    "pass",
    "pw",
];

/// Whether a URL query or fragment parameter (or a pair after `?`, `&` or `#`) is secret.
pub(super) fn is_query_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    QUERY_SECRETS.contains(&lower.as_str()) || is_secret_name(name)
}

/// Values kept under a secret name: booleans and switches, empty quotes, references to a
/// variable (`$OPENAI_API_KEY`, `${env:X}`, `${input:x}`) and file paths: not secrets
/// themselves, and what an analyst needs to see.
pub(super) fn is_harmless_value(value: &str) -> bool {
    let v = value.trim();
    let unquoted = v.trim_matches(|c| c == '"' || c == '\'');
    if unquoted.is_empty() {
        return true;
    }
    let lower = unquoted.to_ascii_lowercase();
    let switch = matches!(
        lower.as_str(),
        "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "none"
            | "null"
            | "nil"
            | "0"
            | "1"
            | "disabled"
            | "enabled"
            | "disable"
            | "enable"
            | "required"
            | "optional"
            | "auto"
            | "default"
    );
    switch || is_reference(unquoted) || is_path(unquoted)
}

/// `$NAME` (capitals), `${…}` with a name inside: a reference to a secret, not the secret.
fn is_reference(v: &str) -> bool {
    if let Some(inner) = v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        return !inner.is_empty()
            && inner.len() <= 128
            && inner.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-'));
    }
    v.strip_prefix('$').is_some_and(|name| {
        !name.is_empty()
            && name.len() <= 128
            && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            && name.bytes().next().is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
    })
}

/// A file path: starts with `/`, `~/`, `./` or `../`, has no characters a path rarely holds
/// (`+`, `=`, `:`, `@`, spaces) and no part that looks random.
pub(super) fn is_path(v: &str) -> bool {
    let rooted = ["/", "~/", "./", "../"].iter().any(|p| v.starts_with(p));
    rooted
        && v.len() <= 4096
        && v.matches('/').count() >= 2
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~'))
        && v.split('/').all(|part| !super::tokens::high_entropy(part))
}
