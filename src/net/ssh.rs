//! How matador reaches a remote node: the real OpenSSH client (`ssh`), key
//! authentication only, host-key checking on against a known_hosts file the
//! lab setup writes, no user or system ssh configuration (`-F none`), no
//! prompts (`BatchMode`), bounded connection time and keep-alives so a dead
//! link is noticed.
//!
//! [`SshTarget::command`] builds the argument list; [`classify_failure`]
//! turns ssh's stderr into a precise reason (host key refused, auth refused,
//! unreachable).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One node reachable over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshTarget {
    /// Node name used in every error message (e.g. `de-1`).
    pub node: String,
    /// Address or host name.
    pub host: String,
    /// TCP port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Private key file.
    pub identity: PathBuf,
    /// known_hosts file holding the node's host key (checked strictly).
    pub known_hosts: PathBuf,
    /// Connection timeout.
    #[serde(default = "default_connect_timeout", with = "secs")]
    pub connect_timeout: Duration,
    /// Keep-alive interval; the link is declared dead after 3 missed ones.
    #[serde(default = "default_alive", with = "secs")]
    pub server_alive: Duration,
    /// Command prefix run before `ssh`, e.g. `["ip", "netns", "exec", "router"]`
    /// when the client must run inside a namespace. Empty: none.
    #[serde(default)]
    pub wrapper: Vec<String>,
    /// The ssh client program.
    #[serde(default = "default_ssh")]
    pub ssh_program: PathBuf,
}

fn default_port() -> u16 {
    22
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_alive() -> Duration {
    Duration::from_secs(5)
}
fn default_ssh() -> PathBuf {
    PathBuf::from("ssh")
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

impl SshTarget {
    /// A target with default port, timeouts and client.
    pub fn new(
        node: impl Into<String>,
        host: impl Into<String>,
        user: impl Into<String>,
        identity: impl Into<PathBuf>,
        known_hosts: impl Into<PathBuf>,
    ) -> Self {
        SshTarget {
            node: node.into(),
            host: host.into(),
            port: default_port(),
            user: user.into(),
            identity: identity.into(),
            known_hosts: known_hosts.into(),
            connect_timeout: default_connect_timeout(),
            server_alive: default_alive(),
            wrapper: Vec::new(),
            ssh_program: default_ssh(),
        }
    }

    /// Program and arguments that run `remote` (already a shell command
    /// line, see [`shell_quote`]) on the node.
    pub fn command(&self, remote: &str) -> (String, Vec<String>) {
        let ssh = self.ssh_program.display().to_string();
        let mut args: Vec<String> = Vec::new();
        let opt = |args: &mut Vec<String>, o: String| {
            args.push("-o".into());
            args.push(o);
        };
        args.extend(["-F".into(), "none".into(), "-T".into()]);
        args.extend(["-i".into(), self.identity.display().to_string()]);
        args.extend(["-p".into(), self.port.to_string()]);
        args.extend(["-l".into(), self.user.clone()]);
        opt(&mut args, "BatchMode=yes".into());
        opt(&mut args, "IdentitiesOnly=yes".into());
        opt(&mut args, "StrictHostKeyChecking=yes".into());
        opt(
            &mut args,
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
        );
        opt(&mut args, "GlobalKnownHostsFile=/dev/null".into());
        opt(&mut args, "UpdateHostKeys=no".into());
        opt(&mut args, "PasswordAuthentication=no".into());
        opt(&mut args, "KbdInteractiveAuthentication=no".into());
        opt(
            &mut args,
            format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1)),
        );
        opt(
            &mut args,
            format!("ServerAliveInterval={}", self.server_alive.as_secs().max(1)),
        );
        opt(&mut args, "ServerAliveCountMax=3".into());
        opt(&mut args, "LogLevel=ERROR".into());
        args.push("--".into());
        args.push(self.host.clone());
        args.push(remote.to_string());
        match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut all: Vec<String> = rest.to_vec();
                all.push(ssh);
                all.extend(args);
                (first.clone(), all)
            }
            None => (ssh, args),
        }
    }
}

/// Quotes one word for the remote POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@".contains(c))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The known_hosts line for `host:port` with public key `pubkey`
/// (the content of an `ssh_host_*_key.pub` file: `type base64 [comment]`).
pub fn known_hosts_line(host: &str, port: u16, pubkey: &str) -> String {
    let mut parts = pubkey.split_whitespace();
    let kind = parts.next().unwrap_or("");
    let key = parts.next().unwrap_or("");
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    format!("{name} {kind} {key}")
}

/// Writes a known_hosts file with one line per `(host, port, pubkey)`.
pub fn write_known_hosts(path: &Path, entries: &[(&str, u16, &str)]) -> std::io::Result<()> {
    let mut s = String::new();
    for (h, p, k) in entries {
        s.push_str(&known_hosts_line(h, *p, k));
        s.push('\n');
    }
    std::fs::write(path, s)
}

/// Why an ssh connection failed, judged from ssh's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshFailure {
    /// The node's host key is unknown or does not match known_hosts.
    HostKey,
    /// The node refused our key.
    Auth,
    /// No TCP connection (refused, timed out, no route, unknown host).
    Unreachable,
    /// Something else (see the stderr text).
    Other,
}

/// Classifies ssh's stderr output.
pub fn classify_failure(stderr: &str) -> SshFailure {
    let s = stderr.to_ascii_lowercase();
    if s.contains("host key verification failed")
        || s.contains("remote host identification has changed")
        || s.contains("no ") && s.contains("host key is known")
    {
        SshFailure::HostKey
    } else if s.contains("permission denied") {
        SshFailure::Auth
    } else if s.contains("connection refused")
        || s.contains("timed out")
        || s.contains("no route to host")
        || s.contains("network is unreachable")
        || s.contains("could not resolve hostname")
        || s.contains("connection closed by")
    {
        SshFailure::Unreachable
    } else {
        SshFailure::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_strict_and_batch() {
        let mut t = SshTarget::new("de-1", "198.18.1.2", "root", "/k/id", "/k/known");
        t.port = 2222;
        let (prog, args) = t.command("matador agent");
        assert_eq!(prog, "ssh");
        let joined = args.join(" ");
        for want in [
            "StrictHostKeyChecking=yes",
            "BatchMode=yes",
            "UserKnownHostsFile=/k/known",
            "ConnectTimeout=10",
            "ServerAliveInterval=5",
            "-p 2222",
            "-F none",
        ] {
            assert!(joined.contains(want), "{want} missing in {joined}");
        }
        assert_eq!(args.last().unwrap(), "matador agent");
        t.wrapper = vec!["ip".into(), "netns".into(), "exec".into(), "r".into()];
        let (prog, args) = t.command("x");
        assert_eq!(prog, "ip");
        assert_eq!(args[..4], ["netns", "exec", "r", "ssh"]);
    }

    #[test]
    fn quoting_and_known_hosts() {
        assert_eq!(shell_quote("/usr/bin/matador"), "/usr/bin/matador");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(
            known_hosts_line("198.18.0.2", 2222, "ssh-ed25519 AAAA root@x\n"),
            "[198.18.0.2]:2222 ssh-ed25519 AAAA"
        );
        assert_eq!(
            known_hosts_line("n", 22, "ssh-ed25519 AAAA"),
            "n ssh-ed25519 AAAA"
        );
    }

    #[test]
    fn failures_are_classified() {
        assert_eq!(
            classify_failure("Host key verification failed.\r\n"),
            SshFailure::HostKey
        );
        assert_eq!(
            classify_failure("root@1.2.3.4: Permission denied (publickey)."),
            SshFailure::Auth
        );
        assert_eq!(
            classify_failure("ssh: connect to host x port 22: Connection refused"),
            SshFailure::Unreachable
        );
        assert_eq!(classify_failure("weird"), SshFailure::Other);
    }
}
