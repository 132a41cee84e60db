//! Command-line rules: what an option says about the argument after it or glued to it.

use super::names::{is_flag_name, is_harmless_value};
use super::pairs::secret_pair_name;
use super::shell::Word;

/// A span to hide: the string of the command line it is in, and the byte range.
pub(super) type Hide = (usize, usize, usize);

/// Commands whose `-p` option takes a password (glued: `-pSECRET`), and `sshpass -p SECRET`.
const PASSWORD_P: &[&str] = &["mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlsh", "mariadb", "mariadb-dump"];

/// Commands whose `login` subcommand takes `-p PASSWORD` (elsewhere `-p` maps ports).
const LOGIN_P: &[&str] = &["docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras"];

/// Shells whose `-c` takes a script: a string of commands, not one value.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ash", "ksh", "mksh", "fish", "busybox"];

/// Wrappers run before the command they start.
const WRAPPERS: &[&str] = &["sudo", "env", "exec", "nohup", "time", "command", "nice", "doas", "xargs"];

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Whether `w` is a value rather than an option: not `--x`, not `-x…` with a letter.
fn is_value(w: &Word) -> bool {
    let t = w.text.as_str();
    if w.is_separator() {
        return false;
    }
    let option = t.starts_with("--") && t.len() > 2
        || t.starts_with('-') && t.as_bytes().get(1).is_some_and(u8::is_ascii_alphabetic);
    !option
}

/// Where the value after the first `sep` in a word starts (the whole word when it has none).
fn after(w: &Word, raw: &str, sep: char) -> (usize, usize, usize) {
    match raw.find(sep) {
        Some(at) => (w.owner, w.start + at + 1, w.end),
        None => (w.owner, w.start, w.end),
    }
}

/// The spans the command-line rules hide in `words` (`raw` gives each word's text as written):
/// 1. `--opt value`, `-opt value` with a secret option name (not a boolean flag such as
///    `--no-auth`): the next word, unless harmless (`true`, a path, `$VAR`);
/// 2. `--opt=value`, `-Dname=value`, `NAME=value` with a secret name: the whole value;
/// 3. `-u`/`-U`/`--user`/`--proxy-user` `user:password` (curl), glued or not: the password;
/// 4. `-pSECRET` of mysql and mariadb, `sshpass -p SECRET`, `docker login -p SECRET` (and
///    podman, helm, …), `redis-cli -a SECRET`.
///
/// The script after a shell's `-c` (`-lc`, `-ec`, …) is not a value: a script with blanks is
/// judged word by word as a command line of its own (see `scrub`), so `sh -c "TOKEN=x python
/// serve.py"` hides `x` and keeps the command it runs.
pub(super) fn rules<'a>(words: &[Word], raw: impl Fn(&Word) -> &'a str) -> Vec<Hide> {
    let mut hide = Vec::new();
    let mut command = "";
    let mut expect_command = true;
    // A registry login (`docker login`, `helm registry login`) was seen in this command.
    let mut login = false;
    // The previous word was a shell's `-c`: this one is its script.
    let mut script = false;
    let mut i = 0;
    while let Some(w) = words.get(i) {
        let t = w.text.as_str();
        let next = words.get(i + 1).filter(|n| is_value(n));
        i += 1;
        if std::mem::take(&mut script) && t.contains(char::is_whitespace) {
            continue;
        }
        script = SHELLS.contains(&command) && is_script_option(t);
        if w.is_separator() {
            expect_command = true;
            login = false;
            continue;
        }
        if t == "login" && LOGIN_P.contains(&command) {
            login = true;
        }
        if expect_command {
            let assignment = t.contains('=');
            if !assignment && !t.starts_with('-') && !WRAPPERS.contains(&basename(t)) {
                command = basename(t);
                expect_command = false;
                continue;
            }
        }
        let r = raw(w);
        let named = |name: &str| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        if let Some((name, value)) = t.split_once('=').filter(|(name, _)| named(name)) {
            // 2: `--api-key=x`, `-Dpassword=x`, `API_KEY=x`, `--user=u:p`.
            if secret_pair_name(name) && !is_harmless_value(value) {
                hide.push(after(w, r, '='));
            } else if is_user_option(name) && value.contains(':') {
                let (o, s, e) = after(w, r, '=');
                let value_raw = s.checked_sub(w.start).and_then(|off| r.get(off..)).unwrap_or_default();
                let colon = value_raw.find(':').map_or(s, |c| s + c + 1);
                hide.push((o, colon, e));
            }
            continue;
        }
        if t.starts_with('-') && t.len() > 1 {
            let short = t.len() == 2;
            // 3: `-u user:pass`, `--user user:pass`, glued `-uuser:pass`.
            if let Some(n) = next.filter(|n| is_user_option(t) && n.text.contains(':')) {
                hide.push(after(n, raw(n), ':'));
                i += 1;
                continue;
            }
            if (t.starts_with("-u") || t.starts_with("-U")) && !t.starts_with("--") && t.len() > 2 && t.contains(':') {
                hide.push(after(w, r, ':'));
                continue;
            }
            // 4: tools whose short option is a password.
            let p_password = PASSWORD_P.contains(&command) && t.starts_with("-p") && !t.starts_with("--");
            if p_password && !short {
                hide.push((w.owner, w.start + 2.min(r.len()), w.end));
                continue;
            }
            let next_password = (command == "sshpass" || login) && t == "-p" || (command == "redis-cli" && t == "-a");
            if next_password {
                if let Some(n) = next {
                    hide.push((n.owner, n.start, n.end));
                    i += 1;
                }
                continue;
            }
            if command == "redis-cli" && t.starts_with("-a") && !short && !t.starts_with("--") {
                hide.push((w.owner, w.start + 2.min(r.len()), w.end));
                continue;
            }
            // 1: `--api-key value`.
            if !short && named(t) && secret_pair_name(t) && !is_flag_name(t) {
                if let Some(n) = next {
                    if !is_harmless_value(&n.text) {
                        hide.push((n.owner, n.start, n.end));
                    }
                    i += 1;
                }
            }
        }
    }
    hide
}

/// `-c`, or a cluster of short shell options ending in it (`-lc`, `-ec`, `-xec`).
fn is_script_option(word: &str) -> bool {
    word.len() >= 2
        && word.starts_with('-')
        && word.ends_with('c')
        && word.bytes().skip(1).all(|b| b.is_ascii_lowercase())
}

fn is_user_option(name: &str) -> bool {
    matches!(name, "-u" | "-U" | "--user" | "--proxy-user" | "--auth" | "--basic-auth" | "--http-user")
}
