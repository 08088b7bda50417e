//! Live capture with libpcap (the `pcap` crate) on its own thread.
//!
//! [`LiveCapture::start`] opens the interface (promiscuous mode off, a BPF
//! filter, a snaplen and a kernel buffer size), then a dedicated thread reads
//! packets and writes them to nanosecond pcap files, rotating by size and/or
//! age into numbered files. Records are written whole and the file is flushed
//! at least every [`FLUSH_INTERVAL`], so a crash loses at most the last
//! buffer and never leaves more than one torn record at the end of a file.
//!
//! The capture runs in the network namespace of the calling thread: run the
//! agent inside the namespace (e.g. `ip netns exec NS matador agent`).

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Files are flushed to the kernel at least this often while packets arrive
/// (and whenever the interface is idle for a read timeout).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// libpcap read timeout: how quickly the thread notices a stop request.
const READ_TIMEOUT_MS: i32 = 100;

/// Default snapshot length: large enough for any frame on a 64 KiB-MTU
/// interface (loopback, veth with GSO), so nothing is truncated.
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// Default kernel buffer: 4 MiB absorbs bursts while the writer flushes.
pub const DEFAULT_BUFFER_SIZE: u32 = 4 * 1024 * 1024;

/// nanosecond-resolution pcap magic (written little-endian).
const PCAP_NS_MAGIC: u32 = 0xa1b2_3c4d;

/// What to capture and where to write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveSpec {
    /// Interface name (`any` captures on all interfaces of the namespace).
    pub interface: String,
    /// BPF filter expression (tcpdump syntax); empty or absent: everything.
    #[serde(default)]
    pub filter: Option<String>,
    /// Bytes kept per packet; longer frames are truncated (and counted).
    #[serde(default = "default_snaplen")]
    pub snaplen: u32,
    /// Kernel capture buffer in bytes.
    #[serde(default = "default_buffer_size")]
    pub buffer_size: u32,
    /// Start a new file once the current one reaches this many bytes.
    #[serde(default)]
    pub rotate_bytes: Option<u64>,
    /// Start a new file once the current one is this many seconds old.
    #[serde(default)]
    pub rotate_secs: Option<u64>,
    /// File name prefix (letters, digits, `.`, `_`, `-`): `<prefix>.pcap`
    /// without rotation, `<prefix>-0001.pcap`, `<prefix>-0002.pcap`, … with.
    pub prefix: String,
}

fn default_snaplen() -> u32 {
    DEFAULT_SNAPLEN
}

fn default_buffer_size() -> u32 {
    DEFAULT_BUFFER_SIZE
}

impl LiveSpec {
    /// A spec with default snaplen/buffer, no filter and no rotation.
    pub fn new(interface: impl Into<String>, prefix: impl Into<String>) -> Self {
        LiveSpec {
            interface: interface.into(),
            filter: None,
            snaplen: DEFAULT_SNAPLEN,
            buffer_size: DEFAULT_BUFFER_SIZE,
            rotate_bytes: None,
            rotate_secs: None,
            prefix: prefix.into(),
        }
    }

    fn rotating(&self) -> bool {
        self.rotate_bytes.is_some() || self.rotate_secs.is_some()
    }
}

/// Counters of a running or finished capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveStats {
    /// Packets written to the files.
    pub written: u64,
    /// Bytes of packet data written (captured lengths).
    pub bytes: u64,
    /// Packets cut by the snaplen (captured length < original length).
    pub truncated: u64,
    /// Packets the kernel received (libpcap `ps_recv`).
    pub received: u64,
    /// Packets dropped because the buffer was full (libpcap `ps_drop`).
    pub dropped: u64,
    /// Packets dropped by the interface or driver (libpcap `ps_ifdrop`).
    pub if_dropped: u64,
    /// Files opened so far.
    pub files: u64,
}

/// What a finished capture produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSummary {
    /// Final counters.
    pub stats: LiveStats,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
    /// Human-readable warnings (truncation, drops).
    pub warnings: Vec<String>,
}

/// A live-capture failure, naming the interface or file concerned.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The spec is unusable.
    #[error("capture on {interface}: invalid spec: {reason}")]
    Spec {
        /// Interface.
        interface: String,
        /// What is wrong.
        reason: String,
    },
    /// libpcap refused to open/configure the interface.
    #[error("capture on {interface}: {step}: {source}")]
    Pcap {
        /// Interface.
        interface: String,
        /// What was being done (open, filter, read, stats).
        step: &'static str,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// Writing the output failed.
    #[error("capture on {interface}: writing {}: {source}", file.display())]
    Write {
        /// Interface.
        interface: String,
        /// File.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The capture thread panicked (a bug; reported instead of propagated).
    #[error("capture on {interface}: capture thread panicked")]
    Panicked {
        /// Interface.
        interface: String,
    },
}

/// Shared state between the capture thread and its owner.
#[derive(Debug, Default)]
struct Shared {
    stats: LiveStats,
    files: Vec<PathBuf>,
}

/// A running capture. Stop it with [`LiveCapture::stop`]; dropping it also
/// stops the thread (without reporting).
#[derive(Debug)]
pub struct LiveCapture {
    interface: String,
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<Result<(), LiveError>>>,
}

/// Checks a file-name prefix: no path separators, nothing hidden.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 128
        && !prefix.starts_with('.')
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl LiveCapture {
    /// Opens the interface and starts capturing into `dir`. Returns once
    /// libpcap is active, so packets sent afterwards are captured.
    pub fn start(spec: &LiveSpec, dir: &Path) -> Result<LiveCapture, LiveError> {
        let interface = spec.interface.clone();
        let bad = |reason: String| LiveError::Spec {
            interface: interface.clone(),
            reason,
        };
        if !valid_prefix(&spec.prefix) {
            return Err(bad(format!("bad file prefix {:?}", spec.prefix)));
        }
        if spec.snaplen < 64 || spec.snaplen > DEFAULT_SNAPLEN {
            return Err(bad(format!("snaplen {} outside 64..=262144", spec.snaplen)));
        }
        if spec.rotate_bytes == Some(0) || spec.rotate_secs == Some(0) {
            return Err(bad("rotation limits must be positive".into()));
        }
        let buffer = i32::try_from(spec.buffer_size)
            .map_err(|_| bad(format!("buffer size {} too large", spec.buffer_size)))?;
        let pcap_err = |step: &'static str| {
            let interface = interface.clone();
            move |source| LiveError::Pcap {
                interface,
                step,
                source,
            }
        };
        let mut cap = pcap::Capture::from_device(spec.interface.as_str())
            .map_err(pcap_err("open"))?
            .promisc(false)
            .snaplen(spec.snaplen as i32)
            .buffer_size(buffer)
            .timeout(READ_TIMEOUT_MS)
            .precision(pcap::Precision::Nano)
            .immediate_mode(true)
            .open()
            .map_err(pcap_err("open"))?;
        if let Some(filter) = spec.filter.as_deref().filter(|f| !f.trim().is_empty()) {
            cap.filter(filter, true).map_err(pcap_err("filter"))?;
        }
        let linktype = cap.get_datalink().0;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut writer = Rotator::new(spec, dir, linktype, Arc::clone(&shared))?;
        // Open the first file now so a missing directory fails at start.
        writer.open_next()?;
        let thread = {
            let stop = Arc::clone(&stop);
            let shared = Arc::clone(&shared);
            let interface = interface.clone();
            std::thread::Builder::new()
                .name(format!("capture-{interface}"))
                .spawn(move || run(cap, writer, &stop, &shared, &interface))
                .map_err(|e| bad(format!("cannot spawn thread: {e}")))?
        };
        Ok(LiveCapture {
            interface,
            stop,
            shared,
            thread: Some(thread),
        })
    }

    /// Current counters.
    pub fn stats(&self) -> LiveStats {
        lock(&self.shared).stats
    }

    /// Files written so far.
    pub fn files(&self) -> Vec<PathBuf> {
        lock(&self.shared).files.clone()
    }

    /// Whether the capture thread is still running (it ends on stop or error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the capture: reads what libpcap still holds, flushes, closes
    /// the file and returns the final counters.
    pub fn stop(mut self) -> Result<LiveSummary, LiveError> {
        self.stop.store(true, Ordering::SeqCst);
        let result = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(LiveError::Panicked {
                interface: self.interface.clone(),
            }),
            None => Ok(()),
        };
        result?;
        let shared = lock(&self.shared);
        let stats = shared.stats;
        let mut warnings = Vec::new();
        if stats.truncated > 0 {
            warnings.push(format!(
                "{}: {} packet(s) truncated by the snaplen; raise it",
                self.interface, stats.truncated
            ));
        }
        if stats.dropped > 0 || stats.if_dropped > 0 {
            warnings.push(format!(
                "{}: {} packet(s) dropped by the kernel, {} by the interface; raise the buffer size",
                self.interface, stats.dropped, stats.if_dropped
            ));
        }
        Ok(LiveSummary {
            stats,
            files: shared.files.clone(),
            warnings,
        })
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A poisoned lock only means the thread panicked; the counters are still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The capture loop (runs on its own thread).
fn run(
    cap: pcap::Capture<pcap::Active>,
    mut writer: Rotator,
    stop: &AtomicBool,
    shared: &Mutex<Shared>,
    interface: &str,
) -> Result<(), LiveError> {
    let pcap_err = |step: &'static str| {
        move |source| LiveError::Pcap {
            interface: interface.to_string(),
            step,
            source,
        }
    };
    let mut cap = cap;
    let mut stats_at = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match cap.next_packet() {
            Ok(p) => writer.write(p.header, p.data)?,
            Err(pcap::Error::TimeoutExpired) => writer.idle()?,
            Err(e) => {
                writer.finish()?;
                return Err(pcap_err("read")(e));
            }
        }
        if stats_at.elapsed() >= FLUSH_INTERVAL {
            stats_at = Instant::now();
            update_kernel_stats(&mut cap, shared);
        }
    }
    // Drain what the kernel already holds (non-blocking) before closing.
    let mut cap = cap.setnonblock().map_err(pcap_err("set non-blocking"))?;
    while let Ok(p) = cap.next_packet() {
        writer.write(p.header, p.data)?;
    }
    update_kernel_stats(&mut cap, shared);
    writer.finish()
}

fn update_kernel_stats(cap: &mut pcap::Capture<pcap::Active>, shared: &Mutex<Shared>) {
    if let Ok(s) = cap.stats() {
        let mut sh = lock(shared);
        sh.stats.received = u64::from(s.received);
        sh.stats.dropped = u64::from(s.dropped);
        sh.stats.if_dropped = u64::from(s.if_dropped);
    }
}

/// Writes pcap records, rotating into numbered files.
struct Rotator {
    interface: String,
    dir: PathBuf,
    prefix: String,
    rotating: bool,
    rotate_bytes: Option<u64>,
    rotate_age: Option<Duration>,
    snaplen: u32,
    linktype: i32,
    shared: Arc<Mutex<Shared>>,
    current: Option<(BufWriter<File>, PathBuf)>,
    opened: Instant,
    file_bytes: u64,
    last_flush: Instant,
    seq: u32,
}

impl Rotator {
    fn new(
        spec: &LiveSpec,
        dir: &Path,
        linktype: i32,
        shared: Arc<Mutex<Shared>>,
    ) -> Result<Rotator, LiveError> {
        Ok(Rotator {
            interface: spec.interface.clone(),
            dir: dir.to_path_buf(),
            prefix: spec.prefix.clone(),
            rotating: spec.rotating(),
            rotate_bytes: spec.rotate_bytes,
            rotate_age: spec.rotate_secs.map(Duration::from_secs),
            snaplen: spec.snaplen,
            linktype,
            shared,
            current: None,
            opened: Instant::now(),
            file_bytes: 0,
            last_flush: Instant::now(),
            seq: 0,
        })
    }

    fn io_err(&self, file: &Path) -> impl FnOnce(std::io::Error) -> LiveError {
        let interface = self.interface.clone();
        let file = file.to_path_buf();
        move |source| LiveError::Write {
            interface,
            file,
            source,
        }
    }

    fn open_next(&mut self) -> Result<(), LiveError> {
        self.finish()?;
        self.seq += 1;
        let name = if self.rotating {
            format!("{}-{:04}.pcap", self.prefix, self.seq)
        } else {
            format!("{}.pcap", self.prefix)
        };
        let path = self.dir.join(name);
        let file = File::create(&path).map_err(self.io_err(&path))?;
        let mut w = BufWriter::with_capacity(64 * 1024, file);
        let mut hdr = Vec::with_capacity(24);
        hdr.extend_from_slice(&PCAP_NS_MAGIC.to_le_bytes());
        hdr.extend_from_slice(&2u16.to_le_bytes());
        hdr.extend_from_slice(&4u16.to_le_bytes());
        hdr.extend_from_slice(&0i32.to_le_bytes());
        hdr.extend_from_slice(&0u32.to_le_bytes());
        hdr.extend_from_slice(&self.snaplen.to_le_bytes());
        hdr.extend_from_slice(&(self.linktype as u32).to_le_bytes());
        w.write_all(&hdr).map_err(self.io_err(&path))?;
        // The header reaches the disk at once: an empty capture is still a valid file.
        w.flush().map_err(self.io_err(&path))?;
        self.file_bytes = hdr.len() as u64;
        self.opened = Instant::now();
        self.last_flush = Instant::now();
        {
            let mut sh = lock(&self.shared);
            sh.files.push(path.clone());
            sh.stats.files += 1;
        }
        self.current = Some((w, path));
        Ok(())
    }

    fn due(&self) -> bool {
        self.rotate_bytes.is_some_and(|b| self.file_bytes >= b)
            || self.rotate_age.is_some_and(|a| self.opened.elapsed() >= a)
    }

    fn write(&mut self, h: &pcap::PacketHeader, data: &[u8]) -> Result<(), LiveError> {
        if self.current.is_none() || self.due() {
            self.open_next()?;
        }
        // One buffer per record, so a flush never splits a record in two writes
        // unless the record itself exceeds the buffer.
        let mut rec = Vec::with_capacity(16 + data.len());
        rec.extend_from_slice(&(h.ts.tv_sec as u32).to_le_bytes());
        // Precision::Nano: tv_usec carries nanoseconds.
        rec.extend_from_slice(&(h.ts.tv_usec as u32).to_le_bytes());
        rec.extend_from_slice(&(data.len() as u32).to_le_bytes());
        rec.extend_from_slice(&h.len.to_le_bytes());
        rec.extend_from_slice(data);
        let Some((w, path)) = self.current.as_mut() else {
            return Ok(());
        };
        if let Err(e) = w.write_all(&rec) {
            let p = path.clone();
            return Err(self.io_err(&p)(e));
        }
        self.file_bytes += rec.len() as u64;
        {
            let mut sh = lock(&self.shared);
            sh.stats.written += 1;
            sh.stats.bytes += data.len() as u64;
            if (data.len() as u32) < h.len {
                sh.stats.truncated += 1;
            }
        }
        if self.last_flush.elapsed() >= FLUSH_INTERVAL {
            self.flush()?;
        }
        Ok(())
    }

    /// No packet within the read timeout: flush, rotate by age if due.
    fn idle(&mut self) -> Result<(), LiveError> {
        self.flush()?;
        if self.rotate_age.is_some() && self.due() {
            self.open_next()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LiveError> {
        self.last_flush = Instant::now();
        if let Some((w, path)) = self.current.as_mut()
            && let Err(e) = w.flush()
        {
            let p = path.clone();
            return Err(self.io_err(&p)(e));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), LiveError> {
        if let Some((mut w, path)) = self.current.take() {
            w.flush().map_err(self.io_err(&path))?;
            w.get_ref().sync_data().map_err(self.io_err(&path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        assert!(valid_prefix("capture-node-de-1"));
        assert!(!valid_prefix("../etc"));
        assert!(!valid_prefix(".hidden"));
        assert!(!valid_prefix("a/b"));
        assert!(!valid_prefix(""));
    }

    #[test]
    fn bad_specs_are_refused_before_opening() {
        let dir = std::env::temp_dir();
        let mut s = LiveSpec::new("lo", "x/y");
        assert!(matches!(
            LiveCapture::start(&s, &dir),
            Err(LiveError::Spec { .. })
        ));
        s.prefix = "ok".into();
        s.snaplen = 10;
        let e = LiveCapture::start(&s, &dir).unwrap_err().to_string();
        assert!(e.contains("snaplen"), "{e}");
        s.snaplen = DEFAULT_SNAPLEN;
        s.rotate_bytes = Some(0);
        assert!(LiveCapture::start(&s, &dir).is_err());
    }

    #[test]
    fn unknown_interface_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = LiveSpec::new("nosuchif0", "x");
        let e = LiveCapture::start(&s, dir.path()).unwrap_err().to_string();
        assert!(e.contains("nosuchif0"), "{e}");
    }
}
