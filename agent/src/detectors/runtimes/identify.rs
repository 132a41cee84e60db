//! Optional identification of a server through its documented endpoint (off by default).
//!
//! Rules:
//! 1. only when enabled (`scan --identify-servers`, or the agent's configuration);
//! 2. only on the loopback address: `127.0.0.1` (or `::1` for an IPv6-only listener), on a
//!    port the process listens on with loopback or all-interfaces exposure; a socket bound to
//!    one specific address is never contacted;
//! 3. plain `GET`, `Host: localhost`, no proxy (proxy variables are ignored), no redirects, one
//!    second for the whole exchange, at most [`MAX_BODY`] bytes read;
//! 4. the answer is parsed for a version and model names only; nothing else is kept;
//! 5. the loopback asked is the one of the **server's own network namespace**: a process in
//!    another namespace (a container) listening on port P says nothing about what listens on
//!    port P of the host's loopback, which may be another server altogether. The namespace is
//!    `/proc/<pid>/ns/net`, opened once (so the decision and the entry are about the same
//!    namespace even if the pid is reused); when it is not the agent's own, the exchange runs
//!    on a short-lived thread that enters it (`setns(CLONE_NEWNET)`) before creating its
//!    sockets (a socket stays in the namespace it was created in) and then ends, so no other
//!    work of the agent runs in it. When the namespace cannot be opened or entered (not root,
//!    a seccomp filter), the server is not asked: its identity is the URL with the reason.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::report::inventory::{Exposure, Listener, ServerIdentity};

use super::signatures::IdentifyRequest;

/// Largest answer read.
const MAX_BODY: u64 = 256 * 1024;

/// Most model names kept from one answer.
const MAX_MODELS: usize = 64;

/// The loopback URL base for a listener, if it may be contacted.
pub fn loopback_base(l: &Listener) -> Option<String> {
    match l.exposure {
        Exposure::Specific => None,
        _ if l.address.contains(':') && l.exposure == Exposure::Loopback => Some(format!("http://[::1]:{}", l.port)),
        _ => Some(format!("http://127.0.0.1:{}", l.port)),
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(1)))
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into()
}

/// The network namespace of `pid`, open, with its id (the nsfs inode).
fn open_netns(pid: &str) -> std::io::Result<(OwnedFd, u64)> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(format!("/proc/{pid}/ns/net"), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    #[allow(clippy::unnecessary_cast)]
    let ino = rustix::fs::fstat(&fd)?.st_ino as u64;
    Ok((fd, ino))
}

/// [`identify`] for the server process `pid`, in its own network namespace (rule 5).
pub fn identify_process(pid: i32, listeners: &[Listener], requests: &[IdentifyRequest]) -> Option<ServerIdentity> {
    let first = requests.first()?;
    let base = listeners.iter().find_map(loopback_base)?;
    let not_asked = |why: String| {
        Some(ServerIdentity {
            url: format!("{base}{}", first.path),
            status: None,
            version: None,
            models: Vec::new(),
            error: Some(format!("not asked: {why}")),
        })
    };
    let own = match open_netns("self") {
        Ok((_, ino)) => ino,
        Err(e) => return not_asked(format!("cannot read the agent's network namespace: {e}")),
    };
    let (ns, theirs) = match open_netns(&pid.to_string()) {
        Ok(ns) => ns,
        Err(e) => return not_asked(format!("cannot open the server's network namespace: {e}")),
    };
    if own == theirs {
        return identify(listeners, requests);
    }
    let (listeners, requests) = (listeners.to_vec(), requests.to_vec());
    let exchange = std::thread::Builder::new().name("identify-netns".into()).spawn(move || {
        rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
            .map_err(|e| format!("cannot enter the server's network namespace: {e}"))?;
        Ok::<_, String>(identify(&listeners, &requests))
    });
    match exchange.map(|t| t.join()) {
        Ok(Ok(Ok(identity))) => identity,
        Ok(Ok(Err(why))) => not_asked(why),
        Ok(Err(_)) => not_asked("the exchange failed".into()),
        Err(e) => not_asked(format!("cannot start a thread: {e}")),
    }
}

/// Asks the server behind `listeners` with `requests`, on the loopback of the calling thread's
/// network namespace; the first port that answers one request is asked the others. `None` when
/// there is nothing to ask.
pub fn identify(listeners: &[Listener], requests: &[IdentifyRequest]) -> Option<ServerIdentity> {
    let first = requests.first()?;
    let bases: Vec<String> = listeners.iter().filter_map(loopback_base).collect();
    if bases.is_empty() {
        return None;
    }
    let agent = agent();
    let mut last = None;
    for base in &bases {
        let mut identity = ServerIdentity {
            url: format!("{base}{}", first.path),
            status: None,
            version: None,
            models: Vec::new(),
            error: None,
        };
        let mut answered = false;
        for req in requests {
            match get(&agent, &format!("{base}{}", req.path)) {
                Ok((status, body)) => {
                    identity.status = identity.status.or(Some(status));
                    if (200..300).contains(&status) {
                        answered = true;
                        apply(&mut identity, req, &body);
                    }
                }
                Err(e) => identity.error = Some(e),
            }
            if !answered {
                break;
            }
        }
        if answered {
            identity.error = None;
            return Some(identity);
        }
        last = Some(identity);
    }
    last
}

fn get(agent: &ureq::Agent, url: &str) -> Result<(u16, String), String> {
    let mut resp = agent.get(url).header("Host", "localhost").call().map_err(|e| e.to_string().to_lowercase())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().with_config().limit(MAX_BODY).read_to_string().unwrap_or_default();
    Ok((status, body))
}

fn apply(identity: &mut ServerIdentity, req: &IdentifyRequest, body: &str) {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    if let Some(path) = &req.version {
        let v = if path.is_empty() {
            Some(body.trim().trim_matches('"').chars().take(64).collect())
        } else {
            json.as_ref().and_then(|j| select(j, path).into_iter().next())
        };
        identity.version = identity.version.take().or(v.filter(|v: &String| !v.is_empty()));
    }
    if let (Some(path), Some(j)) = (&req.models, &json) {
        identity.models.extend(select(j, path).into_iter().take(MAX_MODELS));
        identity.models.sort();
        identity.models.dedup();
    }
}

/// Strings at `path` in `value`: dotted keys, `name[]` iterates an array, a leading `[]`
/// iterates the root array.
pub fn select(value: &serde_json::Value, path: &str) -> Vec<String> {
    let mut current = vec![value];
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, iterate) = match part.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (part, false),
        };
        let mut next = Vec::new();
        for v in current {
            let Some(v) = (if key.is_empty() { Some(v) } else { v.get(key) }) else { continue };
            if iterate {
                next.extend(v.as_array().into_iter().flatten());
            } else {
                next.push(v);
            }
        }
        current = next;
    }
    current
        .into_iter()
        .filter_map(|v| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn selection_paths() {
        let j: serde_json::Value =
            serde_json::from_str(r#"{"version":"0.5.1","data":[{"id":"a"},{"id":"b"}],"system":{"v":3}}"#).unwrap();
        assert_eq!(select(&j, "version"), vec!["0.5.1"]);
        assert_eq!(select(&j, "data[].id"), vec!["a", "b"]);
        assert_eq!(select(&j, "system.v"), vec!["3"]);
        let arr: serde_json::Value = serde_json::from_str(r#"[{"model_name":"x"}]"#).unwrap();
        assert_eq!(select(&arr, "[].model_name"), vec!["x"]);
        assert!(select(&j, "missing[].x").is_empty());
    }

    #[test]
    fn specific_addresses_are_never_contacted() {
        let l = |a: &str, e| Listener { address: a.into(), port: 80, exposure: e };
        assert_eq!(loopback_base(&l("10.0.0.5", Exposure::Specific)), None);
        assert_eq!(loopback_base(&l("0.0.0.0", Exposure::AllInterfaces)).as_deref(), Some("http://127.0.0.1:80"));
        assert_eq!(loopback_base(&l("::1", Exposure::Loopback)).as_deref(), Some("http://[::1]:80"));
    }

    #[test]
    fn a_real_server_on_loopback_is_asked() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = server.accept().unwrap();
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let body = if req.starts_with("GET /api/version") {
                    r#"{"version":"0.12.3"}"#
                } else {
                    r#"{"models":[{"name":"llama3:8b"}]}"#
                };
                write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    .unwrap();
                seen.push(req);
            }
            seen
        });
        let reqs = vec![
            IdentifyRequest { path: "/api/version".into(), version: Some("version".into()), models: None },
            IdentifyRequest { path: "/api/ps".into(), version: None, models: Some("models[].name".into()) },
        ];
        let listeners = [Listener { address: "0.0.0.0".into(), port, exposure: Exposure::AllInterfaces }];
        let id = identify(&listeners, &reqs).unwrap();
        assert_eq!(id.version.as_deref(), Some("0.12.3"));
        assert_eq!(id.models, vec!["llama3:8b"]);
        assert_eq!(id.status, Some(200));
        let seen = handle.join().unwrap();
        assert!(seen.iter().all(|r| r.to_lowercase().contains("host: localhost")), "{seen:?}");
    }

    #[test]
    fn a_server_whose_network_namespace_cannot_be_opened_is_not_asked_and_says_why() {
        // Something listens on the agent's loopback; a process that is gone must not be
        // identified by it.
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let reqs = vec![IdentifyRequest { path: "/".into(), version: Some("".into()), models: None }];
        let listeners = [Listener { address: "127.0.0.1".into(), port, exposure: Exposure::Loopback }];
        let id = identify_process(i32::MAX, &listeners, &reqs).unwrap();
        assert_eq!(id.status, None);
        assert!(id.error.as_deref().is_some_and(|e| e.starts_with("not asked: ")), "{id:?}");
        assert_eq!(id.url, format!("http://127.0.0.1:{port}/"));
    }

    #[test]
    fn a_server_in_the_agents_own_namespace_is_asked_directly() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let answer = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).unwrap();
            write!(s, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n1.2.3").unwrap();
        });
        let reqs = vec![IdentifyRequest { path: "/v".into(), version: Some("".into()), models: None }];
        let listeners = [Listener { address: "127.0.0.1".into(), port, exposure: Exposure::Loopback }];
        let pid = i32::try_from(std::process::id()).unwrap();
        let id = identify_process(pid, &listeners, &reqs).unwrap();
        assert_eq!(id.version.as_deref(), Some("1.2.3"), "{id:?}");
        answer.join().unwrap();
    }

    #[test]
    fn a_silent_port_times_out_within_about_a_second() {
        // Accepts and never answers.
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let reqs = vec![IdentifyRequest { path: "/".into(), version: Some("".into()), models: None }];
        let listeners = [Listener { address: "127.0.0.1".into(), port, exposure: Exposure::Loopback }];
        let id = identify(&listeners, &reqs).unwrap();
        assert!(id.error.is_some() && id.version.is_none(), "{id:?}");
        drop(server);
    }
}
