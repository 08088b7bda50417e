//! Network namespaces, veth links, bridges, addresses, routes and sysctls,
//! all through `ip` (one `ip -batch` call per namespace where possible, which
//! keeps a lab's bring-up fast).

use super::NetError;
use super::cmd::Cmd;
use super::state::{Resource, StateFile};

/// Checks a namespace name (letters, digits, `-`, `_`, `.`; at most 64).
pub fn check_ns_name(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid {
            what: "namespace name",
            value: name.into(),
            message: "use 1-64 letters, digits, '-', '_' or '.'".into(),
        })
    }
}

/// Checks an interface name (at most 15 bytes, no '/', ':' or spaces).
pub fn check_if_name(name: &str) -> Result<(), NetError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(NetError::Invalid {
            what: "interface name",
            value: name.into(),
            message: "use 1-15 letters, digits, '-', '_' or '.'".into(),
        })
    }
}

/// Whether a namespace exists.
pub fn exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// Lists namespace names.
pub fn list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates a namespace (recorded in `state` first) and brings its loopback up.
pub fn create(state: &mut StateFile, name: &str) -> Result<(), NetError> {
    check_ns_name(name)?;
    state.add(Resource::Netns { name: name.into() })?;
    Cmd::new("ip").args(["netns", "add", name]).run()?;
    Cmd::new("ip")
        .args(["-n", name, "link", "set", "lo", "up"])
        .run()?;
    Ok(())
}

/// A veth pair with one end in each namespace (`None`: the current one).
pub fn veth(
    ns_a: Option<&str>,
    if_a: &str,
    ns_b: Option<&str>,
    if_b: &str,
) -> Result<(), NetError> {
    check_if_name(if_a)?;
    check_if_name(if_b)?;
    let mut c = Cmd::new("ip").args(["link", "add", "name", if_a]);
    if let Some(n) = ns_a {
        c = c.args(["netns", n]);
    }
    c = c.args(["type", "veth", "peer", "name", if_b]);
    if let Some(n) = ns_b {
        c = c.args(["netns", n]);
    }
    c.run()?;
    Ok(())
}

/// Runs `ip` batch lines in a namespace (`None`: the current one). Each line
/// is a list of tokens; tokens must not contain whitespace (checked).
pub fn ip_batch(ns: Option<&str>, lines: &[Vec<String>]) -> Result<(), NetError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for l in lines {
        for t in l {
            if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c == '#' || c == '"') {
                return Err(NetError::Invalid {
                    what: "ip argument",
                    value: t.clone(),
                    message: "empty or contains whitespace/quotes".into(),
                });
            }
        }
        text.push_str(&l.join(" "));
        text.push('\n');
    }
    let mut c = Cmd::new("ip");
    if let Some(n) = ns {
        c = c.args(["-n", n]);
    }
    c.args(["-batch", "-"])
        .stdin(text.clone())
        .run()
        .map_err(|e| match e {
            NetError::Failed {
                command, stderr, ..
            } => NetError::Failed {
                command: format!("{command} <<< {}", text.replace('\n', "; ")),
                status: "non-zero exit".into(),
                stderr,
            },
            e => e,
        })?;
    Ok(())
}

/// Builds an `ip` batch line from words.
#[macro_export]
macro_rules! ipl {
    ($($w:expr),* $(,)?) => { vec![$($w.to_string()),*] };
}

/// Sets sysctls (`key=value`) inside a namespace.
pub fn sysctls(ns: Option<&str>, kv: &[(&str, &str)]) -> Result<(), NetError> {
    if kv.is_empty() {
        return Ok(());
    }
    let mut c = Cmd::new("sysctl").arg("-qw").netns(ns);
    for (k, v) in kv {
        c = c.arg(format!("{k}={v}"));
    }
    c.run()?;
    Ok(())
}

/// Sets sysctls under `/proc/sys/net` inside a namespace by writing the
/// files from a thread that entered it (no process per namespace; the
/// `net.*` sysctls belong to the writer's network namespace).
pub fn net_sysctls_direct(ns: &str, kv: &[(&str, &str)]) -> Result<(), NetError> {
    let kv: Vec<(String, String)> = kv
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, _) in &kv {
        if !k.starts_with("net.") || k.contains("..") || k.contains('/') {
            return Err(NetError::Invalid {
                what: "sysctl",
                value: k.clone(),
                message: "a net.* key".into(),
            });
        }
    }
    run_in(Some(ns), move || {
        for (k, v) in &kv {
            let path = format!("/proc/sys/{}", k.replace('.', "/"));
            std::fs::write(&path, v)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))?;
        }
        Ok(())
    })
}

/// Names of the links in a namespace.
pub fn links(ns: Option<&str>) -> Result<Vec<String>, NetError> {
    let mut c = Cmd::new("ip");
    if let Some(n) = ns {
        c = c.args(["-n", n]);
    }
    let out = c.args(["-o", "link", "show"]).run()?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect())
}

/// Moves the calling thread (only) into the network namespace `spec`: a
/// name under /run/netns or a path such as /proc/PID/ns/net. The one place
/// matador calls `setns(2)`.
#[allow(unsafe_code)]
pub fn enter_thread(spec: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let path = if spec.contains('/') {
        spec.to_string()
    } else {
        format!("/run/netns/{spec}")
    };
    let f = std::fs::File::open(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))?;
    // SAFETY: `f` is an open namespace file for the whole call; setns only
    // changes the calling thread's network namespace and touches no memory
    // of ours.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(e.kind(), format!("setns {path}: {e}")));
    }
    Ok(())
}

/// Runs `f` on a new thread that entered network namespace `ns` (`None`:
/// the current one), e.g. to open sockets inside a namespace.
pub fn run_in<T: Send + 'static>(
    ns: Option<&str>,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, NetError> {
    let ns = ns.map(str::to_string);
    let path = ns
        .as_ref()
        .map(|n| std::path::Path::new("/run/netns").join(n));
    let p2 = path.clone();
    let h = std::thread::spawn(move || -> std::io::Result<T> {
        if let Some(p) = p2 {
            enter_thread(&p.to_string_lossy())?;
        }
        f()
    });
    let io = |source| NetError::Io {
        path: path.clone().unwrap_or_else(|| "(current namespace)".into()),
        source,
    };
    h.join()
        .map_err(|_| io(std::io::Error::other("namespace thread panicked")))?
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_ns_name("mt1a2b3-phone-a").is_ok());
        assert!(check_ns_name("a b").is_err());
        assert!(check_ns_name("../x").is_err());
        assert!(check_if_name("wg1234567890123").is_ok());
        assert!(check_if_name("wg12345678901234").is_err());
    }

    #[test]
    fn batch_refuses_whitespace() {
        let e = ip_batch(None, &[vec!["link".into(), "set x".into()]]).unwrap_err();
        assert!(matches!(e, NetError::Invalid { .. }));
    }
}
