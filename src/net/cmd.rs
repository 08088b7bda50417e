//! The one command runner of the network layer. Commands are argv vectors
//! (never a shell string, so names and addresses from files cannot inject
//! anything), optionally run inside a network namespace via
//! `ip netns exec`, with a timeout; a failure names the command line and
//! carries its standard error. Standard output is returned to the caller and
//! never put into errors (it may hold keys).

use super::NetError;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Default time limit for a command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The Debian package that provides a program, for install hints.
pub fn install_hint(program: &str) -> &'static str {
    match program {
        "wireguard-go" => "apt-get install wireguard-go",
        "wg" => "apt-get install wireguard-tools",
        "ip" | "bridge" | "tc" => "apt-get install iproute2",
        "iptables" => "apt-get install iptables",
        "nft" => "apt-get install nftables",
        "ping" => "apt-get install iputils-ping",
        "dnsmasq" => "apt-get install dnsmasq",
        "sshd" | "ssh-keygen" => "apt-get install openssh-server openssh-client",
        "tcpdump" => "apt-get install tcpdump",
        "sysctl" => "apt-get install procps",
        _ => "see scripts/install-deps.sh",
    }
}

/// Finds `program` on `PATH` (or checks an absolute path).
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Fails with an install hint when `program` is not installed.
pub fn require(program: &str) -> Result<std::path::PathBuf, NetError> {
    which(program).ok_or_else(|| NetError::Missing {
        program: program.to_string(),
        hint: install_hint(program),
    })
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    netns: Option<String>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl Cmd {
    /// A command running `program` (looked up on `PATH`).
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            netns: None,
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.args.push(a.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs inside network namespace `ns` (`None`: the current one).
    pub fn netns(mut self, ns: Option<&str>) -> Cmd {
        self.netns = ns.map(str::to_string);
        self
    }

    /// Feeds `data` on standard input (never logged).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }

    /// Sets the time limit.
    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = t;
        self
    }

    /// The program and arguments as executed (with the `ip netns exec` prefix).
    pub fn argv(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(ns) = &self.netns {
            v.extend(["ip".to_string(), "netns".into(), "exec".into(), ns.clone()]);
        }
        v.push(self.program.clone());
        v.extend(self.args.iter().cloned());
        v
    }

    /// The command line for messages.
    pub fn display(&self) -> String {
        self.argv().join(" ")
    }

    /// A `std::process::Command` for this argv (to spawn daemons).
    pub fn command(&self) -> Command {
        let argv = self.argv();
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c
    }

    fn missing(&self) -> NetError {
        NetError::Missing {
            program: self.program.clone(),
            hint: install_hint(&self.program),
        }
    }

    /// Runs the command; returns (exit success, stdout, stderr).
    pub fn output(&self) -> Result<(bool, String, String), NetError> {
        let (status, out, err) = self.output_status()?;
        if self.netns.is_some()
            && !status.success()
            && err.contains("exec of \"")
            && err.contains("No such file")
        {
            return Err(self.missing());
        }
        Ok((status.success(), out, err))
    }

    /// Runs the command (killed after the timeout) and returns its exit
    /// status with standard output and error, for callers that need the
    /// exit code itself (e.g. ssh's 255).
    pub fn output_status(&self) -> Result<(ExitStatus, String, String), NetError> {
        let mut c = self.command();
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                if self.netns.is_some() {
                    NetError::Missing {
                        program: "ip".into(),
                        hint: install_hint("ip"),
                    }
                } else {
                    self.missing()
                }
            } else {
                NetError::Spawn {
                    command: self.display(),
                    source,
                }
            }
        })?;
        if let (Some(data), Some(mut w)) = (self.stdin.clone(), child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = w.write_all(&data);
            });
        }
        let mut out_pipe = child.stdout.take();
        let mut err_pipe = child.stderr.take();
        let out_t = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = out_pipe.as_mut() {
                let _ = p.read_to_end(&mut s);
            }
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(p) = err_pipe.as_mut() {
                let _ = p.read_to_end(&mut s);
            }
            s
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if start.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(NetError::Timeout {
                        command: self.display(),
                        secs: self.timeout.as_secs(),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(source) => {
                    return Err(NetError::Spawn {
                        command: self.display(),
                        source,
                    });
                }
            }
        };
        let out = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
        let err = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
        Ok((status, out, err))
    }
    /// Runs the command and returns its standard output; a non-zero exit is
    /// an error naming the command.
    pub fn run(&self) -> Result<String, NetError> {
        let (ok, out, err) = self.output()?;
        if ok { Ok(out) } else { Err(self.failed(&err)) }
    }

    /// Runs the command and reports whether it succeeded (for probes and
    /// best-effort cleanup); only a missing program or spawn failure is an error.
    pub fn succeeds(&self) -> Result<bool, NetError> {
        Ok(self.output()?.0)
    }

    fn failed(&self, stderr: &str) -> NetError {
        let stderr = stderr.trim();
        let stderr = if stderr.len() > 600 {
            let mut cut = 600;
            while !stderr.is_char_boundary(cut) {
                cut -= 1;
            }
            &stderr[..cut]
        } else {
            stderr
        };
        NetError::Failed {
            command: self.display(),
            status: "non-zero exit".into(),
            stderr: stderr.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_command() {
        let e = Cmd::new("ls")
            .arg("/nonexistent-matador")
            .run()
            .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("ls /nonexistent-matador"), "{s}");
    }

    #[test]
    fn missing_program_has_hint() {
        let e = Cmd::new("wireguard-go-not-there").run().unwrap_err();
        assert!(matches!(e, NetError::Missing { .. }), "{e}");
    }

    #[test]
    fn arguments_are_not_shell_interpreted() {
        let out = Cmd::new("echo").arg("$(id) ; rm -rf /").run().unwrap();
        assert_eq!(out.trim(), "$(id) ; rm -rf /");
    }

    #[test]
    fn stdin_and_timeout() {
        let out = Cmd::new("cat").stdin("secret").run().unwrap();
        assert_eq!(out, "secret");
        let e = Cmd::new("sleep")
            .arg("5")
            .timeout(Duration::from_millis(100))
            .run()
            .unwrap_err();
        assert!(matches!(e, NetError::Timeout { .. }), "{e}");
    }
}
