//! The campaign side: starts `ssh NODE matador agent …` and offers a typed
//! async API over the line protocol. Requests are multiplexed by id, so a
//! slow `run` does not block `clock`. Every error names the node.

use super::protocol::*;
use crate::capture::live::LiveSpec;
use crate::net::ssh::{SshFailure, SshTarget, classify_failure, shell_quote};
use base64::Engine;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::oneshot;

/// Lines of ssh/agent stderr kept for error messages.
const STDERR_TAIL: usize = 20;

/// Bytes asked per `fetch` request.
const FETCH_CHUNK: u32 = 256 * 1024;

/// `fetch` requests kept in flight.
const FETCH_WINDOW: usize = 4;

/// How to start the agent on a node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeConfig {
    /// SSH access.
    pub ssh: SshTarget,
    /// Path of the matador binary on the node.
    #[serde(default = "default_program")]
    pub agent_program: String,
    /// Capture directory on the node.
    pub agent_dir: String,
    /// Programs the agent may `run` (absent: the agent's default list).
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Time limit for one request (a fetch chunk, a clock round trip, …).
    #[serde(default = "default_request_timeout", with = "secs")]
    pub request_timeout: Duration,
    /// Run the agent on this machine instead of over SSH (the lab router's
    /// own captures): `ssh.wrapper` (e.g. `ip netns exec ROUTER`) is kept,
    /// the other `ssh` fields except `node` are ignored.
    #[serde(default)]
    pub local: bool,
}

fn default_program() -> String {
    "matador".into()
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
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

impl NodeConfig {
    /// A config with the default agent program, allow-list and timeout.
    pub fn new(ssh: SshTarget, agent_dir: impl Into<String>) -> Self {
        NodeConfig {
            ssh,
            agent_program: default_program(),
            agent_dir: agent_dir.into(),
            allow: None,
            request_timeout: default_request_timeout(),
            local: false,
        }
    }

    /// A config that runs the agent locally, behind `wrapper` (may be empty),
    /// with the same API as a remote node.
    pub fn local(
        node: impl Into<String>,
        wrapper: Vec<String>,
        agent_program: impl Into<String>,
        agent_dir: impl Into<String>,
    ) -> Self {
        let mut ssh = SshTarget::new(node, "localhost", "", "", "");
        ssh.wrapper = wrapper;
        let mut cfg = NodeConfig::new(ssh, agent_dir);
        cfg.agent_program = agent_program.into();
        cfg.local = true;
        cfg
    }

    /// Program and arguments that start the agent.
    pub fn agent_command(&self) -> (String, Vec<String>) {
        if !self.local {
            return self.ssh.command(&self.remote_command());
        }
        let mut words: Vec<String> = self.ssh.wrapper.clone();
        words.push(self.agent_program.clone());
        words.extend(["agent".into(), "--dir".into(), self.agent_dir.clone()]);
        for a in self.allow.iter().flatten() {
            words.extend(["--allow".into(), a.clone()]);
        }
        if self.allow.as_ref().is_some_and(Vec::is_empty) {
            words.push("--allow-none".into());
        }
        let program = words.remove(0);
        (program, words)
    }

    /// The remote command line.
    pub fn remote_command(&self) -> String {
        let mut words = vec![
            shell_quote(&self.agent_program),
            "agent".into(),
            "--dir".into(),
            shell_quote(&self.agent_dir),
        ];
        for a in self.allow.iter().flatten() {
            words.push("--allow".into());
            words.push(shell_quote(a));
        }
        if self.allow.as_ref().is_some_and(Vec::is_empty) {
            words.push("--allow-none".into());
        }
        words.join(" ")
    }
}

/// A failure talking to a node's agent. Every variant names the node.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The ssh client could not be started.
    #[error("node {node}: cannot start {program}: {source} (install openssh-client)")]
    Spawn {
        /// Node.
        node: String,
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Host-key checking refused the node.
    #[error(
        "node {node}: host key refused (not in or different from {}); not connecting: {detail}",
        known_hosts.display()
    )]
    HostKey {
        /// Node.
        node: String,
        /// The known_hosts file used.
        known_hosts: PathBuf,
        /// ssh's message.
        detail: String,
    },
    /// The node refused our key.
    #[error("node {node}: SSH authentication refused: {detail}")]
    Auth {
        /// Node.
        node: String,
        /// ssh's message.
        detail: String,
    },
    /// No connection to the node.
    #[error("node {node}: unreachable over SSH: {detail}")]
    Unreachable {
        /// Node.
        node: String,
        /// ssh's message.
        detail: String,
    },
    /// SSH worked but no agent answered (binary missing, crashed at start).
    #[error("node {node}: agent did not start: {detail}")]
    NoAgent {
        /// Node.
        node: String,
        /// stderr / exit status.
        detail: String,
    },
    /// The connection or the agent went away.
    #[error(
        "node {node}: agent connection lost during {op} (agent killed or SSH link down){detail}"
    )]
    Dead {
        /// Node.
        node: String,
        /// The op that was waiting.
        op: String,
        /// ssh/agent stderr tail, prefixed with "; last stderr: " when present.
        detail: String,
    },
    /// No answer in time.
    #[error("node {node}: {op} got no answer within {secs:.1} s")]
    Timeout {
        /// Node.
        node: String,
        /// The op.
        op: String,
        /// The limit.
        secs: f64,
    },
    /// The agent answered with an error.
    #[error("node {node}: {op} failed ({kind:?}): {message}")]
    Remote {
        /// Node.
        node: String,
        /// The op.
        op: String,
        /// Category.
        kind: ErrorKind,
        /// Detail.
        message: String,
    },
    /// The agent said something unexpected.
    #[error("node {node}: protocol error: {reason}")]
    Protocol {
        /// Node.
        node: String,
        /// What.
        reason: String,
    },
    /// A fetched file does not match the agent's checksum.
    #[error("node {node}: {file}: checksum mismatch (agent {expected}, received {actual})")]
    Checksum {
        /// Node.
        node: String,
        /// Remote file (capture/file).
        file: String,
        /// Agent's SHA-256.
        expected: String,
        /// SHA-256 of what arrived.
        actual: String,
    },
    /// A local file could not be written.
    #[error("node {node}: {}: {source}", path.display())]
    Local {
        /// Node.
        node: String,
        /// Local path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A request on its way: its id and where the answer will arrive.
struct Sent {
    id: u64,
    rx: oneshot::Receiver<Response>,
}

#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Response>>,
    closed: bool,
}

/// Clock offset of a node relative to this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockOffset {
    /// Node clock minus local clock, in ns.
    pub offset_ns: i64,
    /// Half the round trip of the best sample: the true offset lies
    /// within `offset_ns ± uncertainty_ns`.
    pub uncertainty_ns: u64,
    /// Round trips measured.
    pub rounds: u32,
}

/// A stopped capture with its files copied locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedCapture {
    /// What the agent reported at stop.
    pub info: CaptureInfo,
    /// Local copies (checksum-verified), in the agent's file order.
    pub files: Vec<PathBuf>,
}

/// A connected agent. Dropping it kills the ssh client (the agent then
/// stops its captures when its stdin closes).
pub struct Agent {
    node: String,
    child: tokio::sync::Mutex<Child>,
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Arc<Mutex<Pending>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    next_id: AtomicU64,
    banner: Banner,
    timeout: Duration,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node", &self.node)
            .field("banner", &self.banner)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn tail(stderr: &Mutex<VecDeque<String>>) -> String {
    lock(stderr)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" | ")
}

fn wall_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl Agent {
    /// Starts ssh and the agent on the node, waits for its banner and
    /// checks the protocol version.
    pub async fn connect(cfg: &NodeConfig) -> Result<Agent, AgentError> {
        let node = cfg.ssh.node.clone();
        let (program, args) = cfg.agent_command();
        let mut child = tokio::process::Command::new(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // A group of its own: a terminal's Ctrl-C (SIGINT to the whole
            // foreground group) must reach only matador, which then ends
            // the current step (stopping the node captures over this very
            // connection) and closes the agent itself. In the group, ssh
            // died at once and the in-flight captures were lost.
            .process_group(0)
            .spawn()
            .map_err(|source| AgentError::Spawn {
                node: node.clone(),
                program: program.clone(),
                source,
            })?;
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = child.stderr.take().map(|e| {
            let buf = Arc::clone(&stderr);
            tokio::spawn(async move {
                let mut lines = BoundedLines::new(BufReader::new(e), STDERR_LINE);
                while let Ok(Some(l)) = lines.next_line().await {
                    let mut b = lock(&buf);
                    if b.len() == STDERR_TAIL {
                        b.pop_front();
                    }
                    b.push_back(l.trim().to_string());
                }
            })
        });
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(AgentError::Protocol {
                node,
                reason: "ssh pipes missing".into(),
            });
        };
        let mut lines = BoundedLines::new(BufReader::new(stdout), MAX_RESPONSE_LINE);
        let limit = cfg.ssh.connect_timeout + Duration::from_secs(10);
        let banner = tokio::time::timeout(limit, read_banner(&mut lines)).await;
        let banner = match banner {
            Ok(Ok(Some(b))) => b,
            Ok(result) => {
                // stdout closed (or failed) before the banner: ssh failed.
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                if let Some(t) = stderr_task {
                    let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
                }
                let mut detail = tail(&stderr);
                if let Err(e) = result {
                    detail = format!("{detail} ({e})");
                }
                let status = match status {
                    Ok(Ok(s)) => s.code(),
                    _ => None,
                };
                return Err(failure(cfg, detail, status));
            }
            Err(_) => {
                let _ = child.start_kill();
                return Err(AgentError::Timeout {
                    node,
                    op: "connect".into(),
                    secs: limit.as_secs_f64(),
                });
            }
        };
        let pending = Arc::new(Mutex::new(Pending::default()));
        tokio::spawn(read_responses(lines, Arc::clone(&pending)));
        let agent = Agent {
            node,
            child: tokio::sync::Mutex::new(child),
            stdin: tokio::sync::Mutex::new(stdin),
            pending,
            stderr,
            next_id: AtomicU64::new(1),
            banner,
            timeout: cfg.request_timeout,
        };
        let hello: HelloResult = agent
            .request(Op::Hello {
                protocol: PROTOCOL_VERSION,
            })
            .await?;
        if hello.protocol != PROTOCOL_VERSION {
            return Err(AgentError::Protocol {
                node: agent.node.clone(),
                reason: format!(
                    "agent speaks protocol {}, this build {PROTOCOL_VERSION}",
                    hello.protocol
                ),
            });
        }
        Ok(agent)
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The agent's banner (version, pid on the node).
    pub fn banner(&self) -> &Banner {
        &self.banner
    }

    /// Sends one request and waits for its answer (the config's timeout).
    pub async fn request<T: DeserializeOwned>(&self, op: Op) -> Result<T, AgentError> {
        self.request_within(op, self.timeout).await
    }

    /// Sends one request and waits at most `limit` for its answer.
    pub async fn request_within<T: DeserializeOwned>(
        &self,
        op: Op,
        limit: Duration,
    ) -> Result<T, AgentError> {
        let name = op.name().to_string();
        let resp = self.exchange(op, limit).await?;
        self.decode(&name, resp)
    }

    fn dead(&self, op: &str) -> AgentError {
        let t = tail(&self.stderr);
        AgentError::Dead {
            node: self.node.clone(),
            op: op.to_string(),
            detail: if t.is_empty() {
                String::new()
            } else {
                format!("; last stderr: {t}")
            },
        }
    }

    async fn exchange(&self, op: Op, limit: Duration) -> Result<Response, AgentError> {
        let name = op.name();
        let sent = self.submit(op).await?;
        self.wait(name, sent, limit).await
    }

    /// Sends a request without waiting for its answer (for pipelining).
    async fn submit(&self, op: Op) -> Result<Sent, AgentError> {
        let name = op.name();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = lock(&self.pending);
            if p.closed {
                return Err(self.dead(name));
            }
            p.waiting.insert(id, tx);
        }
        let mut line =
            serde_json::to_vec(&Request { id, op }).map_err(|e| AgentError::Protocol {
                node: self.node.clone(),
                reason: e.to_string(),
            })?;
        line.push(b'\n');
        let written = {
            let mut w = self.stdin.lock().await;
            match w.write_all(&line).await {
                Ok(()) => w.flush().await,
                Err(e) => Err(e),
            }
        };
        if written.is_err() {
            lock(&self.pending).waiting.remove(&id);
            return Err(self.dead(name));
        }
        Ok(Sent { id, rx })
    }

    /// Waits for the answer to a submitted request.
    async fn wait(&self, name: &str, sent: Sent, limit: Duration) -> Result<Response, AgentError> {
        match tokio::time::timeout(limit, sent.rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(self.dead(name)),
            Err(_) => {
                lock(&self.pending).waiting.remove(&sent.id);
                Err(AgentError::Timeout {
                    node: self.node.clone(),
                    op: name.to_string(),
                    secs: limit.as_secs_f64(),
                })
            }
        }
    }

    fn decode<T: DeserializeOwned>(&self, op: &str, r: Response) -> Result<T, AgentError> {
        if !r.ok {
            let e = r.error.unwrap_or(RemoteError {
                kind: ErrorKind::Other,
                message: "error without detail".into(),
            });
            return Err(AgentError::Remote {
                node: self.node.clone(),
                op: op.to_string(),
                kind: e.kind,
                message: e.message,
            });
        }
        let v = r.result.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(v).map_err(|e| AgentError::Protocol {
            node: self.node.clone(),
            reason: format!("{op}: unexpected result: {e}"),
        })
    }

    /// Node health.
    pub async fn health(&self) -> Result<Health, AgentError> {
        self.request(Op::Health).await
    }

    /// Estimates the node's clock offset from `rounds` round trips
    /// (NTP-style midpoint), keeping the one with the shortest round trip.
    pub async fn clock_offset(&self, rounds: u32) -> Result<ClockOffset, AgentError> {
        let mut best: Option<(i128, i128)> = None;
        for _ in 0..rounds.max(1) {
            let t0 = wall_ns();
            let r: ClockReply = self.request(Op::Clock).await?;
            let t2 = wall_ns();
            let remote = i128::from(r.now.secs) * 1_000_000_000 + i128::from(r.now.nanos);
            let rtt = t2 - t0;
            let offset = remote - (t0 + t2) / 2;
            if best.is_none_or(|(b, _)| rtt < b) {
                best = Some((rtt, offset));
            }
        }
        let (rtt, offset) = best.unwrap_or((0, 0));
        Ok(ClockOffset {
            offset_ns: offset.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            uncertainty_ns: (rtt.max(0) / 2) as u64,
            rounds: rounds.max(1),
        })
    }

    /// Starts a capture named `capture` on the node.
    pub async fn start_capture(
        &self,
        capture: &str,
        spec: &LiveSpec,
    ) -> Result<CaptureInfo, AgentError> {
        self.request(Op::CaptureStart {
            capture: capture.to_string(),
            spec: spec.clone(),
        })
        .await
    }

    /// Stops a capture and copies its files into `dest` (checksum-verified).
    pub async fn stop_capture(
        &self,
        capture: &str,
        dest: &Path,
    ) -> Result<FetchedCapture, AgentError> {
        let info: CaptureInfo = self
            .request(Op::CaptureStop {
                capture: capture.to_string(),
            })
            .await?;
        let mut files = Vec::new();
        for f in &info.files {
            files.push(self.fetch(capture, &f.name, dest).await?);
        }
        Ok(FetchedCapture { info, files })
    }

    /// Lists the captures on the node (also those of earlier agents).
    pub async fn list_captures(&self) -> Result<Vec<CaptureInfo>, AgentError> {
        let l: CaptureList = self.request(Op::CaptureList).await?;
        Ok(l.captures)
    }

    /// Copies every file of a capture into `dest` (e.g. one left by an agent
    /// that died mid-capture), in the agent's file order.
    pub async fn fetch_capture(
        &self,
        capture: &str,
        dest: &Path,
    ) -> Result<Vec<PathBuf>, AgentError> {
        let list = self.list_captures().await?;
        let Some(info) = list.into_iter().find(|c| c.capture == capture) else {
            return Err(AgentError::Remote {
                node: self.node.clone(),
                op: "capture_list".into(),
                kind: ErrorKind::NotFound,
                message: format!("no capture {capture}"),
            });
        };
        let mut files = Vec::new();
        for f in &info.files {
            files.push(self.fetch(capture, &f.name, dest).await?);
        }
        Ok(files)
    }

    /// Copies one capture file into `dest/<file>` and checks its SHA-256
    /// against the agent's. Written to `<file>.part` and renamed.
    pub async fn fetch(
        &self,
        capture: &str,
        file: &str,
        dest: &Path,
    ) -> Result<PathBuf, AgentError> {
        let info: FileInfo = self
            .request(Op::FileInfo {
                capture: capture.to_string(),
                file: file.to_string(),
            })
            .await?;
        let local = |path: &Path| {
            let node = self.node.clone();
            let path = path.to_path_buf();
            move |source| AgentError::Local { node, path, source }
        };
        tokio::fs::create_dir_all(dest).await.map_err(local(dest))?;
        let target = dest.join(file);
        let part = dest.join(format!("{file}.part"));
        let mut out = tokio::fs::File::create(&part).await.map_err(local(&part))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        // Sliding window: FETCH_WINDOW requests in flight hide the round
        // trip; answers are consumed in order.
        let fetch_op = |offset: u64| Op::Fetch {
            capture: capture.to_string(),
            file: file.to_string(),
            offset,
            len: FETCH_CHUNK.min(u32::try_from(info.size - offset).unwrap_or(FETCH_CHUNK)),
        };
        let mut inflight = VecDeque::new();
        let mut next = 0u64;
        let mut offset = 0u64;
        while offset < info.size {
            while inflight.len() < FETCH_WINDOW && next < info.size {
                inflight.push_back((next, self.submit(fetch_op(next)).await?));
                next += u64::from(FETCH_CHUNK);
            }
            let Some((_, sent)) = inflight.pop_front() else {
                break;
            };
            let resp = self.wait("fetch", sent, self.timeout).await?;
            let c: Chunk = self.decode("fetch", resp)?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(c.data.as_bytes())
                .map_err(|e| AgentError::Protocol {
                    node: self.node.clone(),
                    reason: format!("{capture}/{file}: bad base64 at {offset}: {e}"),
                })?;
            let expect = u64::from(FETCH_CHUNK).min(info.size - offset);
            if c.offset != offset || (data.len() as u64) < expect {
                return Err(AgentError::Protocol {
                    node: self.node.clone(),
                    reason: format!(
                        "{capture}/{file}: chunk at {} ({} bytes) while expecting {expect} bytes at {offset} of {}",
                        c.offset,
                        data.len(),
                        info.size
                    ),
                });
            }
            // Exactly the bytes the checksum covers.
            let keep = usize::try_from(expect).unwrap_or(data.len());
            ctx.update(&data[..keep]);
            out.write_all(&data[..keep]).await.map_err(local(&part))?;
            offset += expect;
        }
        out.flush().await.map_err(local(&part))?;
        out.sync_all().await.map_err(local(&part))?;
        drop(out);
        let actual = super::server::hex(ctx.finish().as_ref());
        if actual != info.sha256 {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(AgentError::Checksum {
                node: self.node.clone(),
                file: format!("{capture}/{file}"),
                expected: info.sha256,
                actual,
            });
        }
        tokio::fs::rename(&part, &target)
            .await
            .map_err(local(&target))?;
        Ok(target)
    }

    /// Runs an allow-listed program on the node.
    pub async fn run(
        &self,
        program: &str,
        args: &[String],
        limit: Duration,
    ) -> Result<RunResult, AgentError> {
        self.request_within(
            Op::Run {
                program: program.to_string(),
                args: args.to_vec(),
                timeout_ms: Some(limit.as_millis() as u64),
            },
            limit + self.timeout,
        )
        .await
    }

    /// Runs active probes on the node (see [`crate::probes`]); `limit`
    /// bounds the whole run.
    pub async fn probe(
        &self,
        vantage: &str,
        spec: &crate::probes::spec::ProbeSpec,
        limit: Duration,
    ) -> Result<crate::probes::vantage::VantageResult, AgentError> {
        self.request_within(
            Op::Probe {
                vantage: vantage.to_string(),
                spec: Box::new(spec.clone()),
            },
            limit + self.timeout,
        )
        .await
    }

    /// Paris traceroutes from the node (the `trace` op): waits the request's
    /// [`super::trace::TraceRequest::time_bound`] plus the request timeout.
    /// An agent without the op answers `unknown_op` ([`AgentError::Remote`]).
    pub async fn trace(
        &self,
        req: &super::trace::TraceRequest,
    ) -> Result<super::trace::TraceReply, AgentError> {
        let limit = req.time_bound() + self.timeout;
        self.request_within(
            Op::Trace {
                trace: Box::new(req.clone()),
            },
            limit,
        )
        .await
    }

    /// Asks the agent to stop its captures and exit, then waits for ssh.
    pub async fn shutdown(self) -> Result<(), AgentError> {
        let _: serde_json::Value = self.request(Op::Shutdown).await?;
        let mut child = self.child.lock().await;
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = child.start_kill();
                Err(AgentError::Timeout {
                    node: self.node.clone(),
                    op: "shutdown".into(),
                    secs: self.timeout.as_secs_f64(),
                })
            }
        }
    }
}

/// Reads lines until the agent's banner; other lines (shell noise) are skipped.
/// The longest response line accepted from an agent: a fetch chunk
/// ([`MAX_CHUNK`] in base64) or a `run` result (two 256 KiB outputs, JSON
/// escaping included) fit well below it.
pub const MAX_RESPONSE_LINE: usize = 4 * MAX_LINE;

/// ssh/agent stderr lines are cut here.
const STDERR_LINE: usize = 16 * 1024;

/// Lines of an agent's output, each read up to a bound: a broken or hostile
/// node sending an endless line cannot make the client buffer all of it.
#[derive(Debug)]
pub struct BoundedLines<R> {
    r: R,
    max: usize,
}

impl<R: tokio::io::AsyncBufRead + Unpin> BoundedLines<R> {
    /// Lines of `r`, each at most `max` bytes.
    pub fn new(r: R, max: usize) -> Self {
        BoundedLines { r, max }
    }

    /// The next line without its newline (invalid UTF-8 replaced); `None` at
    /// the end of the stream; an `InvalidData` error once a line exceeds the
    /// bound (the stream is then unusable: its framing is lost).
    pub async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        let mut buf = Vec::new();
        loop {
            let avail = self.r.fill_buf().await?;
            if avail.is_empty() {
                return Ok((!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned()));
            }
            let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if buf.len() + take > self.max {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("agent output line longer than {} bytes", self.max),
                ));
            }
            buf.extend_from_slice(&avail[..take]);
            self.r.consume(take + usize::from(done));
            if done {
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(Some(String::from_utf8_lossy(&buf).into_owned()));
            }
        }
    }
}

async fn read_banner(
    lines: &mut BoundedLines<BufReader<ChildStdout>>,
) -> std::io::Result<Option<Banner>> {
    for _ in 0..50 {
        let Some(l) = lines.next_line().await? else {
            return Ok(None);
        };
        if let Ok(b) = serde_json::from_str::<Banner>(&l)
            && b.agent == "matador"
        {
            return Ok(Some(b));
        }
    }
    Err(std::io::Error::other(
        "no agent banner in the first 50 lines",
    ))
}

async fn read_responses(
    mut lines: BoundedLines<BufReader<ChildStdout>>,
    pending: Arc<Mutex<Pending>>,
) {
    while let Ok(Some(l)) = lines.next_line().await {
        let Ok(r) = serde_json::from_str::<Response>(&l) else {
            continue;
        };
        if let Some(id) = r.id
            && let Some(tx) = lock(&pending).waiting.remove(&id)
        {
            let _ = tx.send(r);
        }
    }
    let mut p = lock(&pending);
    p.closed = true;
    // Dropping the senders wakes every waiter with "connection lost".
    p.waiting.clear();
}

fn failure(cfg: &NodeConfig, detail: String, status: Option<i32>) -> AgentError {
    let node = cfg.ssh.node.clone();
    match classify_failure(&detail) {
        SshFailure::HostKey => AgentError::HostKey {
            node,
            known_hosts: cfg.ssh.known_hosts.clone(),
            detail,
        },
        SshFailure::Auth => AgentError::Auth { node, detail },
        SshFailure::Unreachable => AgentError::Unreachable { node, detail },
        // ssh itself exits 255 on its own errors; other codes come from the
        // remote command, i.e. the agent could not run.
        SshFailure::Other if status == Some(255) => AgentError::Unreachable { node, detail },
        SshFailure::Other => AgentError::NoAgent {
            node,
            detail: format!(
                "{} (exit status {})",
                if detail.is_empty() {
                    "no output"
                } else {
                    &detail
                },
                status.map_or("unknown".into(), |s| s.to_string())
            ),
        },
    }
}
