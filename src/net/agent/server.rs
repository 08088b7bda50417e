//! The agent side: reads requests from stdin, answers on stdout (one JSON
//! line each), never exits on bad input. Captures run on their own threads;
//! `run` executes on a helper thread so a slow program does not hold up
//! `clock` or `capture_stop`. Diagnostics go to stderr (ssh forwards them).
//!
//! When stdin closes (the SSH connection ended) or on `shutdown`, running
//! captures are stopped cleanly so their files are complete on disk and can
//! be fetched by a later session.

use super::protocol::*;
use crate::capture::Timestamp;
use crate::capture::live::{LiveCapture, valid_prefix};
use base64::Engine;
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Programs `run` accepts unless the agent is started with its own list.
pub const DEFAULT_ALLOWED: &[&str] = &[
    "ping",
    "ping6",
    "traceroute",
    "tracepath",
    "scamper",
    "ip",
    "uname",
];

/// Output of a `run` program kept per stream (bytes).
const RUN_OUTPUT_CAP: usize = 256 * 1024;

/// How the agent is configured (from `matador agent`'s flags).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Directory holding one sub-directory per capture.
    pub dir: PathBuf,
    /// Program names `run` may execute.
    pub allowed: Vec<String>,
}

/// Error that ends the agent (only stdin/stdout failures do).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The capture directory cannot be created.
    #[error("agent directory {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// stdin/stdout failed (the channel is gone).
    #[error("agent channel: {0}")]
    Channel(#[from] std::io::Error),
}

type Out = Arc<Mutex<Box<dyn Write + Send>>>;

fn send(out: &Out, resp: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(resp).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
    w.write_all(&line)?;
    w.flush()
}

fn err(kind: ErrorKind, message: impl Into<String>) -> RemoteError {
    RemoteError {
        kind,
        message: message.into(),
    }
}

/// Wall clock now, nanosecond digits.
pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs() as i64, u64::from(d.subsec_nanos()), 9)
}

struct State {
    cfg: AgentConfig,
    started: Instant,
    captures: BTreeMap<String, LiveCapture>,
}

/// Serves requests from `input` to `output` until EOF or `shutdown`.
pub fn serve(
    cfg: AgentConfig,
    input: impl BufRead,
    output: Box<dyn Write + Send>,
) -> Result<(), ServeError> {
    std::fs::create_dir_all(&cfg.dir).map_err(|source| ServeError::Dir {
        dir: cfg.dir.clone(),
        source,
    })?;
    let out: Out = Arc::new(Mutex::new(output));
    let banner = Banner {
        agent: "matador".into(),
        protocol: PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
        pid: std::process::id(),
    };
    {
        let mut line = serde_json::to_vec(&banner).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
        w.write_all(&line)?;
        w.flush()?;
    }
    let mut st = State {
        cfg,
        started: Instant::now(),
        captures: BTreeMap::new(),
    };
    let mut input = input;
    let result = loop {
        let line = match read_line(&mut input) {
            Ok(Some(Line::Text(l))) => l,
            Ok(Some(Line::TooLong)) => {
                let r = Response {
                    id: None,
                    ok: false,
                    result: None,
                    error: Some(err(
                        ErrorKind::BadRequest,
                        format!("request line longer than {MAX_LINE} bytes"),
                    )),
                };
                if let Err(e) = send(&out, &r) {
                    break Err(e.into());
                }
                continue;
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e.into()),
        };
        if line.trim().is_empty() {
            continue;
        }
        let (id, op) = match parse(&line) {
            Ok(x) => x,
            Err((id, e)) => {
                if let Err(e) = send(&out, &reply(id, Err(e))) {
                    break Err(e.into());
                }
                continue;
            }
        };
        if let Op::Run {
            program,
            args,
            timeout_ms,
        } = op
        {
            let out = Arc::clone(&out);
            let allowed = st.cfg.allowed.clone();
            std::thread::spawn(move || {
                let r = run_program(&allowed, &program, &args, timeout_ms);
                let _ = send(&out, &reply(Some(id), r));
            });
            continue;
        }
        if let Op::Trace { trace } = op {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let r = super::trace::serve_trace(&trace).and_then(to_value);
                let _ = send(&out, &reply(Some(id), r));
            });
            continue;
        }
        if let Op::Probe { vantage, spec } = op {
            let out = Arc::clone(&out);
            let dir = st.cfg.dir.clone();
            std::thread::spawn(move || {
                let r = probe(&dir, &vantage, *spec);
                let _ = send(&out, &reply(Some(id), r));
            });
            continue;
        }
        let shutdown = op == Op::Shutdown;
        if shutdown {
            stop_all(&mut st);
        }
        let r = handle(&mut st, op);
        if let Err(e) = send(&out, &reply(Some(id), r)) {
            break Err(e.into());
        }
        if shutdown {
            break Ok(());
        }
    };
    stop_all(&mut st);
    result
}

enum Line {
    Text(String),
    TooLong,
}

/// Reads one line of at most [`MAX_LINE`] bytes; longer lines are skipped.
fn read_line(input: &mut impl BufRead) -> std::io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let n = input
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE {
        // Discard the rest of the oversized line.
        let mut sink = Vec::new();
        loop {
            sink.clear();
            let m = input
                .by_ref()
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut sink)?;
            if m == 0 || sink.last() == Some(&b'\n') {
                break;
            }
        }
        return Ok(Some(Line::TooLong));
    }
    Ok(Some(Line::Text(String::from_utf8_lossy(&buf).into_owned())))
}

/// Parses a request, telling unknown ops from bad arguments.
/// Parses one request line: its id (when there is one) and its op, or the
/// error answer (`bad_request`, `unknown_op`) to send back.
pub fn parse(line: &str) -> Result<(u64, Op), (Option<u64>, RemoteError)> {
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| (None, err(ErrorKind::BadRequest, format!("not JSON: {e}"))))?;
    let id = v.get("id").and_then(serde_json::Value::as_u64);
    let Some(id) = id else {
        return Err((None, err(ErrorKind::BadRequest, "missing numeric \"id\"")));
    };
    let Some(name) = v
        .get("op")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
    else {
        return Err((Some(id), err(ErrorKind::BadRequest, "missing \"op\"")));
    };
    if !Op::NAMES.contains(&name.as_str()) {
        return Err((
            Some(id),
            err(ErrorKind::UnknownOp, format!("unknown op {name:?}")),
        ));
    }
    match serde_json::from_value::<Request>(v) {
        Ok(r) => Ok((id, r.op)),
        Err(e) => Err((
            Some(id),
            err(ErrorKind::BadRequest, format!("op {name}: {e}")),
        )),
    }
}

fn reply(id: Option<u64>, r: Result<serde_json::Value, RemoteError>) -> Response {
    match r {
        Ok(v) => Response {
            id,
            ok: true,
            result: Some(v),
            error: None,
        },
        Err(e) => Response {
            id,
            ok: false,
            result: None,
            error: Some(e),
        },
    }
}

fn to_value<T: serde::Serialize>(t: T) -> Result<serde_json::Value, RemoteError> {
    serde_json::to_value(t).map_err(|e| err(ErrorKind::Internal, e.to_string()))
}

fn handle(st: &mut State, op: Op) -> Result<serde_json::Value, RemoteError> {
    match op {
        Op::Hello { protocol } => {
            if protocol != PROTOCOL_VERSION {
                return Err(err(
                    ErrorKind::Unsupported,
                    format!(
                        "client speaks protocol {protocol}, agent {} speaks {PROTOCOL_VERSION}",
                        env!("CARGO_PKG_VERSION")
                    ),
                ));
            }
            to_value(HelloResult {
                protocol: PROTOCOL_VERSION,
                version: env!("CARGO_PKG_VERSION").into(),
                ops: Op::NAMES.iter().map(|s| s.to_string()).collect(),
                allowed_programs: st.cfg.allowed.clone(),
            })
        }
        Op::Clock => to_value(ClockReply { now: now() }),
        Op::Health => to_value(health(st)),
        Op::CaptureStart { capture, spec } => start(st, &capture, &spec),
        Op::CaptureStop { capture } => stop(st, &capture),
        Op::CaptureList => list(st),
        Op::FileInfo { capture, file } => {
            let path = file_path(st, &capture, &file)?;
            to_value(file_info(&path)?)
        }
        Op::Fetch {
            capture,
            file,
            offset,
            len,
        } => {
            let path = file_path(st, &capture, &file)?;
            to_value(fetch(&path, offset, len)?)
        }
        Op::Shutdown => Ok(serde_json::json!({})),
        Op::Run { .. } | Op::Probe { .. } | Op::Trace { .. } => Err(err(
            ErrorKind::Internal,
            "run/probe/trace handled elsewhere",
        )),
    }
}

/// Most requests per second and per run an agent sends for `probe`,
/// whatever the client asks for.
pub const PROBE_MAX_RATE: f64 = 50.0;
/// See [`PROBE_MAX_RATE`].
pub const PROBE_MAX_REQUESTS: u32 = 5000;

/// Runs the `probe` op: caps the limits, puts any capture under `dir`.
fn probe(
    dir: &std::path::Path,
    vantage: &str,
    mut spec: crate::probes::spec::ProbeSpec,
) -> Result<serde_json::Value, RemoteError> {
    let valid = !vantage.is_empty()
        && vantage.len() <= 64
        && vantage
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(err(
            ErrorKind::BadRequest,
            format!("bad vantage name {vantage:?}"),
        ));
    }
    spec.limits.rate_per_s = spec.limits.rate_per_s.clamp(0.01, PROBE_MAX_RATE);
    spec.limits.max_requests = spec.limits.max_requests.min(PROBE_MAX_REQUESTS);
    spec.capture_dir = spec.capture_iface.as_ref().map(|_| {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        dir.join(format!("probe-{vantage}-{ts}"))
    });
    to_value(crate::probes::vantage::run(vantage, &spec))
}

fn health(st: &State) -> Health {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let uptime_secs = read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let mut load = [0.0; 3];
    for (slot, s) in load
        .iter_mut()
        .zip(read("/proc/loadavg").split_whitespace())
    {
        *slot = s.parse().unwrap_or(0.0);
    }
    let (disk_free_bytes, disk_total_bytes) = disk_space(&st.cfg.dir).unwrap_or((0, 0));
    Health {
        hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
        pid: std::process::id(),
        uptime_secs,
        agent_uptime_secs: st.started.elapsed().as_secs_f64(),
        load,
        dir: st.cfg.dir.display().to_string(),
        disk_free_bytes,
        disk_total_bytes,
        clock: now(),
        captures_running: st.captures.values().filter(|c| c.is_running()).count(),
        os: Some(NodeOs::local()),
    }
}

/// Free (for unprivileged users) and total bytes of the file system at `dir`.
#[allow(unsafe_code)]
fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data, so all-zero is a valid value.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid out pointer
    // living across the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    Some((
        (s.f_bavail as u64).saturating_mul(frsize),
        (s.f_blocks as u64).saturating_mul(frsize),
    ))
}

fn capture_dir(st: &State, capture: &str) -> Result<PathBuf, RemoteError> {
    if !valid_prefix(capture) {
        return Err(err(
            ErrorKind::BadRequest,
            format!("bad capture name {capture:?} (letters, digits, . _ -)"),
        ));
    }
    Ok(st.cfg.dir.join(capture))
}

fn file_path(st: &State, capture: &str, file: &str) -> Result<PathBuf, RemoteError> {
    let dir = capture_dir(st, capture)?;
    if !valid_prefix(file) {
        return Err(err(
            ErrorKind::BadRequest,
            format!("bad file name {file:?}"),
        ));
    }
    let p = dir.join(file);
    if !p.is_file() {
        return Err(err(
            ErrorKind::NotFound,
            format!("capture {capture}: no file {file}"),
        ));
    }
    Ok(p)
}

fn list_files(dir: &Path) -> Vec<FileEntry> {
    let mut files: Vec<FileEntry> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let md = e.metadata().ok()?;
            md.is_file().then(|| FileEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                size: md.len(),
            })
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

fn start(
    st: &mut State,
    capture: &str,
    spec: &crate::capture::live::LiveSpec,
) -> Result<serde_json::Value, RemoteError> {
    let dir = capture_dir(st, capture)?;
    if st.captures.contains_key(capture) || dir.exists() {
        return Err(err(
            ErrorKind::Exists,
            format!("capture {capture} exists already"),
        ));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| err(ErrorKind::Io, format!("{}: {e}", dir.display())))?;
    let live = match LiveCapture::start(spec, &dir) {
        Ok(l) => l,
        Err(e) => {
            // Leave no empty directory behind, so the name can be retried.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(err(ErrorKind::Capture, e.to_string()));
        }
    };
    let info = CaptureInfo {
        capture: capture.to_string(),
        running: true,
        files: list_files(&dir),
        stats: Some(live.stats()),
        warnings: Vec::new(),
    };
    eprintln!("agent: capture {capture} started on {}", spec.interface);
    st.captures.insert(capture.to_string(), live);
    to_value(info)
}

fn stop(st: &mut State, capture: &str) -> Result<serde_json::Value, RemoteError> {
    let dir = capture_dir(st, capture)?;
    let Some(live) = st.captures.remove(capture) else {
        return Err(err(
            ErrorKind::NotFound,
            format!("no running capture {capture}"),
        ));
    };
    let summary = live
        .stop()
        .map_err(|e| err(ErrorKind::Capture, e.to_string()))?;
    for w in &summary.warnings {
        eprintln!("agent: warning: {w}");
    }
    to_value(CaptureInfo {
        capture: capture.to_string(),
        running: false,
        files: list_files(&dir),
        stats: Some(summary.stats),
        warnings: summary.warnings,
    })
}

fn stop_all(st: &mut State) {
    for (name, live) in std::mem::take(&mut st.captures) {
        match live.stop() {
            Ok(_) => eprintln!("agent: capture {name} stopped"),
            Err(e) => eprintln!("agent: capture {name}: {e}"),
        }
    }
}

fn list(st: &State) -> Result<serde_json::Value, RemoteError> {
    let mut captures = Vec::new();
    let entries = std::fs::read_dir(&st.cfg.dir)
        .map_err(|e| err(ErrorKind::Io, format!("{}: {e}", st.cfg.dir.display())))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !valid_prefix(&name) || !e.path().is_dir() {
            continue;
        }
        let live = st.captures.get(&name);
        captures.push(CaptureInfo {
            running: live.is_some_and(LiveCapture::is_running),
            files: list_files(&e.path()),
            stats: live.map(LiveCapture::stats),
            warnings: Vec::new(),
            capture: name,
        });
    }
    captures.sort_by(|a, b| a.capture.cmp(&b.capture));
    to_value(CaptureList { captures })
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> RemoteError + '_ {
    move |e| err(ErrorKind::Io, format!("{}: {e}", path.display()))
}

fn file_info(path: &Path) -> Result<FileInfo, RemoteError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let size = f.metadata().map_err(io_err(path))?.len();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut left = size;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = f.read(&mut buf[..want]).map_err(io_err(path))?;
        if n == 0 {
            return Err(err(
                ErrorKind::Io,
                format!("{}: shrank while hashing", path.display()),
            ));
        }
        ctx.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(FileInfo {
        size,
        sha256: hex(ctx.finish().as_ref()),
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fetch(path: &Path, offset: u64, len: u32) -> Result<Chunk, RemoteError> {
    let len = len.min(MAX_CHUNK) as usize;
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let size = f.metadata().map_err(io_err(path))?.len();
    f.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
    let mut buf = Vec::with_capacity(len);
    f.take(len as u64)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    Ok(Chunk {
        offset,
        eof: offset + buf.len() as u64 >= size,
        data: base64::engine::general_purpose::STANDARD.encode(&buf),
    })
}

fn run_program(
    allowed: &[String],
    program: &str,
    args: &[String],
    timeout_ms: Option<u64>,
) -> Result<serde_json::Value, RemoteError> {
    if program.contains('/') || !allowed.iter().any(|a| a == program) {
        return Err(err(
            ErrorKind::Refused,
            format!(
                "program {program:?} is not on the allow-list ({})",
                allowed.join(", ")
            ),
        ));
    }
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(ErrorKind::Io, format!("{program}: {e}")))?;
    let grab = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(r) = r {
                let _ = r.take(RUN_OUTPUT_CAP as u64).read_to_end(&mut v);
            }
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = grab(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let errs = grab(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + Duration::from_millis(timeout_ms.unwrap_or(30_000));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(err(ErrorKind::Io, format!("{program}: {e}"))),
        }
    };
    to_value(RunResult {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: errs.join().unwrap_or_default(),
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the agent over in-memory pipes and returns its output lines.
    fn talk(dir: &Path, input: &str) -> Vec<serde_json::Value> {
        #[derive(Clone)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Shared(Arc::new(Mutex::new(Vec::new())));
        let cfg = AgentConfig {
            dir: dir.to_path_buf(),
            allowed: vec!["uname".into()],
        };
        serve(cfg, input.as_bytes(), Box::new(buf.clone())).unwrap();
        // Give `run` helper threads time to answer.
        std::thread::sleep(Duration::from_millis(300));
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn bad_input_gets_error_replies_and_the_agent_keeps_going() {
        let dir = tempfile::tempdir().unwrap();
        let input = "garbage\n{\"op\":\"health\"}\n{\"id\":1,\"op\":\"frobnicate\"}\n\
                     {\"id\":2,\"op\":\"fetch\"}\n{\"id\":3,\"op\":\"hello\",\"protocol\":99}\n\
                     {\"id\":4,\"op\":\"run\",\"program\":\"rm\",\"args\":[\"-rf\",\"/\"]}\n\
                     {\"id\":5,\"op\":\"file_info\",\"capture\":\"../x\",\"file\":\"y\"}\n\
                     {\"id\":6,\"op\":\"capture_stop\",\"capture\":\"nope\"}\n\
                     {\"id\":7,\"op\":\"clock\"}\n";
        let lines = talk(dir.path(), input);
        assert_eq!(lines[0]["agent"], "matador");
        let kind = |i: usize| lines[i]["error"]["kind"].as_str().unwrap().to_string();
        assert_eq!(kind(1), "bad_request");
        assert_eq!(kind(2), "bad_request");
        assert_eq!(kind(3), "unknown_op");
        assert_eq!(lines[3]["id"], 1);
        assert_eq!(kind(4), "bad_request");
        assert_eq!(kind(5), "unsupported");
        let rest: Vec<_> = lines[6..].iter().collect();
        let by_id = |id: u64| rest.iter().find(|l| l["id"] == id).unwrap();
        assert_eq!(by_id(4)["error"]["kind"], "refused");
        assert_eq!(by_id(5)["error"]["kind"], "bad_request");
        assert_eq!(by_id(6)["error"]["kind"], "not_found");
        assert_eq!(by_id(7)["ok"], true);
        assert!(by_id(7)["result"]["now"].as_str().unwrap().contains('.'));
    }

    #[test]
    fn run_times_out_and_reports_exit_codes() {
        let allowed = vec!["sleep".to_string(), "false".to_string()];
        let t = Instant::now();
        let v = run_program(&allowed, "sleep", &["5".into()], Some(200)).unwrap();
        let r: RunResult = serde_json::from_value(v).unwrap();
        assert!(r.timed_out && r.status.is_none());
        assert!(t.elapsed() < Duration::from_secs(2));
        let v = run_program(&allowed, "false", &[], None).unwrap();
        let r: RunResult = serde_json::from_value(v).unwrap();
        assert_eq!(r.status, Some(1));
        let e = run_program(&allowed, "/bin/sleep", &[], None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Refused);
    }

    #[test]
    fn oversized_lines_are_refused_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut input = "x".repeat(MAX_LINE + 10);
        input.push('\n');
        input.push_str("{\"id\":9,\"op\":\"health\"}\n");
        let lines = talk(dir.path(), &input);
        assert_eq!(lines[1]["error"]["kind"], "bad_request");
        assert_eq!(lines[2]["id"], 9);
        assert_eq!(lines[2]["ok"], true);
        assert!(lines[2]["result"]["disk_total_bytes"].as_u64().unwrap() > 0);
    }

    #[test]
    fn files_are_fetched_in_chunks_with_checksum() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("c1")).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("c1/a.pcap"), &data).unwrap();
        let p = dir.path().join("c1/a.pcap");
        let info = file_info(&p).unwrap();
        assert_eq!(info.size, 200_000);
        let want = hex(ring::digest::digest(&ring::digest::SHA256, &data).as_ref());
        assert_eq!(info.sha256, want);
        let c = fetch(&p, 150_000, 100_000).unwrap();
        assert!(c.eof);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(c.data)
            .unwrap();
        assert_eq!(raw, &data[150_000..]);
        let lines = talk(dir.path(), "{\"id\":1,\"op\":\"capture_list\"}\n");
        assert_eq!(lines[1]["result"]["captures"][0]["capture"], "c1");
        assert_eq!(
            lines[1]["result"]["captures"][0]["files"][0]["size"],
            200_000
        );
    }
}
