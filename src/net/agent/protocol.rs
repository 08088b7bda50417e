//! Wire types of the agent protocol (one JSON object per line; see
//! `docs/agent.md`). Requests carry an `id` and an `op`; every request gets
//! exactly one response with the same `id`, either `ok: true` with a
//! `result` or `ok: false` with an `error`.
//!
//! New operations (like `trace`, [`super::trace`]) are added as new [`Op`]
//! variants with their own result type; old agents answer them with
//! [`ErrorKind::UnknownOp`], so clients can tell "not supported" from "failed".

use crate::capture::Timestamp;
use crate::capture::live::{LiveSpec, LiveStats};
use serde::{Deserialize, Serialize};

/// Protocol version spoken by this build. Bumped only for incompatible
/// changes; new ops and new optional fields keep the version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the agent accepts (bytes, without the newline).
pub const MAX_LINE: usize = 1 << 20;

/// Largest chunk a `fetch` returns (raw bytes, before base64).
pub const MAX_CHUNK: u32 = 512 * 1024;

/// The first line the agent prints, before any request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Banner {
    /// Always `"matador"`.
    pub agent: String,
    /// [`PROTOCOL_VERSION`] of the agent.
    pub protocol: u32,
    /// Crate version of the agent binary.
    pub version: String,
    /// The agent's process id on the node.
    pub pid: u32,
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, echoed in the response.
    pub id: u64,
    /// The operation and its arguments.
    #[serde(flatten)]
    pub op: Op,
}

/// The operations (`"op"` field, snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Version negotiation: the client's protocol version → [`HelloResult`].
    Hello {
        /// Client protocol version.
        protocol: u32,
    },
    /// Node health → [`Health`].
    Health,
    /// The agent's wall clock, answered at once → [`ClockReply`].
    Clock,
    /// Starts a capture named `capture` → [`CaptureInfo`].
    CaptureStart {
        /// Capture name (also its directory on the node).
        capture: String,
        /// What to capture.
        spec: LiveSpec,
    },
    /// Stops a running capture → [`CaptureInfo`] with final stats.
    CaptureStop {
        /// Capture name.
        capture: String,
    },
    /// All captures in the agent's directory, running or not → [`CaptureList`].
    CaptureList,
    /// Size and SHA-256 of one capture file → [`FileInfo`].
    FileInfo {
        /// Capture name.
        capture: String,
        /// File name inside the capture.
        file: String,
    },
    /// A chunk of a capture file → [`Chunk`].
    Fetch {
        /// Capture name.
        capture: String,
        /// File name inside the capture.
        file: String,
        /// Byte offset.
        offset: u64,
        /// Bytes wanted (at most [`MAX_CHUNK`]).
        len: u32,
    },
    /// Runs an allow-listed program → [`RunResult`].
    Run {
        /// Program name (no path; must be on the agent's allow-list).
        program: String,
        /// Arguments, passed without a shell.
        #[serde(default)]
        args: Vec<String>,
        /// Kill the program after this many ms (default 30 s).
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Runs active probes from the node → [`crate::probes::vantage::VantageResult`]
    /// (limits capped by the agent; a capture, if asked for, goes under the
    /// agent's directory as `probe-<vantage>-<time>/`).
    Probe {
        /// Vantage name (for the result).
        vantage: String,
        /// What to probe.
        spec: Box<crate::probes::spec::ProbeSpec>,
    },
    /// Paris traceroutes from the node (the paths engine, in the agent's own
    /// namespace) → [`super::trace::TraceReply`]; limits in [`super::trace`].
    Trace {
        /// Targets and engine settings.
        trace: Box<super::trace::TraceRequest>,
    },
    /// Stops all captures and exits after answering → `{}`.
    Shutdown,
}

impl Op {
    /// The op's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Hello { .. } => "hello",
            Op::Health => "health",
            Op::Clock => "clock",
            Op::CaptureStart { .. } => "capture_start",
            Op::CaptureStop { .. } => "capture_stop",
            Op::CaptureList => "capture_list",
            Op::FileInfo { .. } => "file_info",
            Op::Fetch { .. } => "fetch",
            Op::Run { .. } => "run",
            Op::Probe { .. } => "probe",
            Op::Trace { .. } => "trace",
            Op::Shutdown => "shutdown",
        }
    }

    /// All op names this build knows (to tell bad arguments from unknown ops).
    pub const NAMES: &'static [&'static str] = &[
        "hello",
        "health",
        "clock",
        "capture_start",
        "capture_stop",
        "capture_list",
        "file_info",
        "fetch",
        "run",
        "probe",
        "trace",
        "shutdown",
    ];
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id (`null` when the request had none readable).
    pub id: Option<u64>,
    /// Whether the op succeeded.
    pub ok: bool,
    /// The op's result when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// What went wrong when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RemoteError>,
}

/// An error reported by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// Category.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
}

/// Error categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Not JSON, no id, missing or wrong arguments, line too long.
    BadRequest,
    /// The op is not known to this agent.
    UnknownOp,
    /// Protocol version mismatch.
    Unsupported,
    /// No such capture or file.
    NotFound,
    /// A capture with that name exists already.
    Exists,
    /// Refused by policy (program not on the allow-list).
    Refused,
    /// libpcap failed (interface, filter, …).
    Capture,
    /// The request exceeds one of the agent's limits (targets, packets per
    /// second, total packets, wait): named with the figures in `message`.
    Limit,
    /// The paths engine failed on the node (raw sockets refused, no route).
    Trace,
    /// File-system or process error on the node.
    Io,
    /// Anything else (a bug in the agent).
    Internal,
    /// An error kind this client does not know (newer agent).
    #[serde(other)]
    Other,
}

/// Result of `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResult {
    /// Agent protocol version.
    pub protocol: u32,
    /// Agent crate version.
    pub version: String,
    /// Ops the agent supports.
    pub ops: Vec<String>,
    /// Programs `run` accepts.
    pub allowed_programs: Vec<String>,
}

/// Result of `health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Node host name.
    pub hostname: String,
    /// Agent process id.
    pub pid: u32,
    /// Seconds since the node booted.
    pub uptime_secs: f64,
    /// Seconds since the agent started.
    pub agent_uptime_secs: f64,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    /// Capture directory on the node.
    pub dir: String,
    /// Free bytes for unprivileged users in the capture directory.
    pub disk_free_bytes: u64,
    /// Size of that file system.
    pub disk_total_bytes: u64,
    /// Node wall clock when answering.
    pub clock: Timestamp,
    /// Captures currently running.
    pub captures_running: usize,
    /// The node's operating system and kernel (provenance); absent in the
    /// answers of older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<NodeOs>,
}

/// A node's operating system and kernel, as `uname -a` and
/// `/etc/os-release` describe them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeOs {
    /// Kernel name (`uname -s`, e.g. `Linux`).
    pub kernel: String,
    /// Kernel release (`uname -r`).
    pub release: String,
    /// Kernel version/build string (`uname -v`).
    pub version: String,
    /// Machine architecture (`uname -m`).
    pub machine: String,
    /// The `uname -a`-like line: kernel, host name, release, version, machine.
    pub uname: String,
    /// `PRETTY_NAME` of `/etc/os-release` (e.g. `Debian GNU/Linux 13 (trixie)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_pretty_name: Option<String>,
    /// `ID` of `/etc/os-release`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_id: Option<String>,
    /// `VERSION_ID` of `/etc/os-release`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version_id: Option<String>,
}

impl NodeOs {
    /// This machine's OS and kernel, read from `/proc/sys/kernel` and
    /// `/etc/os-release` (`/usr/lib/os-release` as fallback).
    pub fn local() -> NodeOs {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let kernel = read("/proc/sys/kernel/ostype");
        let release = read("/proc/sys/kernel/osrelease");
        let version = read("/proc/sys/kernel/version");
        let host = read("/proc/sys/kernel/hostname");
        let machine = std::env::consts::ARCH.to_string();
        let uname = [&kernel, &host, &release, &version, &machine]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let osr = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        let field = |k: &str| {
            osr.lines().find_map(|l| {
                let v = l.strip_prefix(k)?.strip_prefix('=')?;
                Some(v.trim().trim_matches('"').to_string())
            })
        };
        NodeOs {
            kernel,
            release,
            version,
            machine,
            uname,
            os_pretty_name: field("PRETTY_NAME"),
            os_id: field("ID"),
            os_version_id: field("VERSION_ID"),
        }
    }
}

/// Result of `clock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockReply {
    /// Node wall clock (ns digits).
    pub now: Timestamp,
}

/// One file of a capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name (inside the capture's directory).
    pub name: String,
    /// Size in bytes when listed.
    pub size: u64,
}

/// A capture as the agent knows it (result of start, stop; list entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureInfo {
    /// Capture name.
    pub capture: String,
    /// Whether this agent is still capturing into it.
    pub running: bool,
    /// Files, in name order.
    pub files: Vec<FileEntry>,
    /// Counters (absent for captures left by an earlier agent).
    #[serde(default)]
    pub stats: Option<LiveStats>,
    /// Warnings (truncation, drops).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Result of `capture_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureList {
    /// Captures, in name order.
    pub captures: Vec<CaptureInfo>,
}

/// Result of `file_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Size in bytes (the checksum covers exactly these bytes).
    pub size: u64,
    /// Lower-case hex SHA-256 of the first `size` bytes.
    pub sha256: String,
}

/// Result of `fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Offset of `data`.
    pub offset: u64,
    /// The bytes, standard base64.
    pub data: String,
    /// Whether the file ends after this chunk.
    pub eof: bool,
}

/// Result of `run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// Exit code (absent when killed by a signal or the timeout).
    pub status: Option<i32>,
    /// Standard output (lossy UTF-8, capped).
    pub stdout: String,
    /// Standard error (lossy UTF-8, capped).
    pub stderr: String,
    /// Whether the timeout killed it.
    pub timed_out: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_flat_objects() {
        let r = Request {
            id: 7,
            op: Op::CaptureStop {
                capture: "m1".into(),
            },
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(s, r#"{"id":7,"op":"capture_stop","capture":"m1"}"#);
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
        let h: Request = serde_json::from_str(r#"{"id":1,"op":"health"}"#).unwrap();
        assert_eq!(h.op, Op::Health);
    }

    /// Freezes the wire format of every op: a change here is a protocol change.
    #[test]
    fn wire_format_of_every_op() {
        let mut spec = LiveSpec::new("eth0", "capture-node-de-1");
        spec.filter = Some("not port 22".into());
        spec.rotate_bytes = Some(100_000_000);
        let ops = vec![
            Op::Hello { protocol: 1 },
            Op::Health,
            Op::Clock,
            Op::CaptureStart {
                capture: "m0001".into(),
                spec,
            },
            Op::CaptureStop {
                capture: "m0001".into(),
            },
            Op::CaptureList,
            Op::FileInfo {
                capture: "m0001".into(),
                file: "capture-node-de-1-0001.pcap".into(),
            },
            Op::Fetch {
                capture: "m0001".into(),
                file: "capture-node-de-1-0001.pcap".into(),
                offset: 262_144,
                len: 262_144,
            },
            Op::Run {
                program: "scamper".into(),
                args: vec!["-v".into()],
                timeout_ms: Some(10_000),
            },
            Op::Shutdown,
        ];
        let lines: Vec<String> = ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| {
                serde_json::to_string(&Request {
                    id: i as u64 + 1,
                    op,
                })
                .unwrap()
            })
            .collect();
        insta::assert_json_snapshot!(lines);
        let err = Response {
            id: Some(3),
            ok: false,
            result: None,
            error: Some(RemoteError {
                kind: ErrorKind::UnknownOp,
                message: "unknown op \"trace\"".into(),
            }),
        };
        insta::assert_snapshot!(serde_json::to_string(&err).unwrap(), @r#"{"id":3,"ok":false,"error":{"kind":"unknown_op","message":"unknown op \"trace\""}}"#);
    }

    /// The `trace` op on the wire (added after the frozen list above).
    #[test]
    fn wire_format_of_trace() {
        let cfg = crate::paths::TraceConfig {
            proto: crate::paths::Proto::Tcp,
            max_ttl: 16,
            probes: 1,
            ..crate::paths::TraceConfig::default()
        };
        let mut t = crate::paths::Target::addr("198.19.23.10".parse().unwrap());
        t.port = Some(5222);
        let r = Request {
            id: 11,
            op: Op::Trace {
                trace: Box::new(super::super::trace::TraceRequest::new(&cfg, &[t])),
            },
        };
        insta::assert_snapshot!(serde_json::to_string(&r).unwrap(), @r#"{"id":11,"op":"trace","trace":{"targets":[{"addr":"198.19.23.10","port":5222}],"proto":"TCP","paris_id":1,"pps":100,"first_ttl":1,"max_ttl":16,"probes":1,"wait_ms":2000,"gap_limit":5,"window":1,"lab_only":false}}"#);
        let e: RemoteError = serde_json::from_str(r#"{"kind":"limit","message":"m"}"#).unwrap();
        assert_eq!(e.kind, ErrorKind::Limit);
    }

    #[test]
    fn names_cover_every_op() {
        for op in [
            Op::Hello { protocol: 1 },
            Op::Health,
            Op::Clock,
            Op::CaptureList,
            Op::Shutdown,
        ] {
            assert!(Op::NAMES.contains(&op.name()));
        }
    }

    #[test]
    fn unknown_error_kinds_do_not_break_old_clients() {
        let e: RemoteError = serde_json::from_str(r#"{"kind":"quota","message":"m"}"#).unwrap();
        assert_eq!(e.kind, ErrorKind::Other);
    }

    #[test]
    fn node_os_of_this_machine() {
        let os = NodeOs::local();
        assert_eq!(os.kernel, "Linux");
        assert!(
            !os.release.is_empty() && os.uname.contains(&os.release),
            "{os:?}"
        );
        let h: Health = serde_json::from_str(
            r#"{"hostname":"n","pid":1,"uptime_secs":1.0,"agent_uptime_secs":1.0,"load":[0.0,0.0,0.0],"dir":"/x","disk_free_bytes":0,"disk_total_bytes":0,"clock":"1.0","captures_running":0}"#,
        )
        .expect("an older agent's answer still parses");
        assert!(h.os.is_none());
    }
}
