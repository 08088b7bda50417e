//! ADB access for the device layer: adb_client (through the adb server or
//! direct TCP) on a dedicated worker thread per device, every call under a
//! timeout. All adb_client sockets go through a local watchdog relay: when a
//! call times out the relay resets its connections, so the blocked thread
//! gets an error instead of hanging (adb_client's direct-TCP read loop spins on
//! a dead socket; the relay turns the phone's EOF into a reset for it).
//! Host-side requests (`devices-l`, `connect`) use the smart-socket protocol
//! directly, with timeouts.
//!
//! Each workaround names the adb_client defect it covers (version 3.2.3,
//! Cargo.lock); tests/adb_client_defects.rs shows each one on the simulated
//! phone or a fake server, and fails when a library update fixes it:
//! - [`host_request`]: `ADBServer` runs `adb start-server` (on the default
//!   port, whatever the server's) before every request to a loopback
//!   server, waits for answers without a bound, and `devices_long` fails
//!   the whole list on one line it cannot parse (a USB phone with "no
//!   permissions"); its `connect_device` takes IPv4 only.
//! - [`Framer`] and the relay: over direct TCP a phone closing mid-call
//!   leaves the call inside adb_client for good.
//! - [`wrap_rc`]: exit codes are lost over direct TCP and through the server.

use super::DeviceError;
use adb_client::ADBDeviceExt;
use adb_client::server_device::ADBServerDevice;
use adb_client::tcp::ADBTcpDevice;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How a device is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Through an adb server (`adb -P PORT`), by serial.
    Server {
        /// Server address (127.0.0.1:5037 by default).
        server: SocketAddrV4,
        /// Serial as `adb devices` lists it.
        serial: String,
    },
    /// Directly over TCP to the device's adbd (no server).
    Direct(SocketAddr),
}

impl Target {
    /// A short name for messages.
    pub fn name(&self) -> String {
        match self {
            Target::Server { serial, .. } => serial.clone(),
            Target::Direct(a) => a.to_string(),
        }
    }
}

/// A device's state as the adb server reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedDevice {
    /// Serial.
    pub serial: String,
    /// `device`, `offline`, `unauthorized`, …
    pub state: String,
    /// `model:` field.
    pub model: Option<String>,
    /// `product:` field.
    pub product: Option<String>,
}

/// The default adb server address: `ANDROID_ADB_SERVER_PORT` or 5037.
pub fn default_server() -> SocketAddrV4 {
    let port = std::env::var("ANDROID_ADB_SERVER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5037);
    SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port)
}

/// One request to the adb server's host service.
pub async fn host_request(
    server: SocketAddrV4,
    req: &str,
    timeout: Duration,
) -> Result<String, DeviceError> {
    let fut = async {
        let mut s = TcpStream::connect(server)
            .await
            .map_err(|e| DeviceError::Server {
                server: server.to_string(),
                message: e.to_string(),
            })?;
        s.write_all(format!("{:04x}{req}", req.len()).as_bytes())
            .await?;
        let mut status = [0u8; 4];
        s.read_exact(&mut status).await?;
        let mut len = [0u8; 4];
        let body = match s.read_exact(&mut len).await {
            Ok(_) => {
                let n = usize::from_str_radix(std::str::from_utf8(&len).unwrap_or("0"), 16)
                    .unwrap_or(0);
                let mut body = vec![0u8; n];
                s.read_exact(&mut body).await?;
                String::from_utf8_lossy(&body).into_owned()
            }
            Err(_) => String::new(),
        };
        if &status == b"OKAY" {
            Ok(body)
        } else {
            Err(DeviceError::Server {
                server: server.to_string(),
                message: format!("{req}: {body}"),
            })
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| DeviceError::Timeout {
            device: server.to_string(),
            what: req.to_string(),
            after: timeout,
        })?
}

/// Lists devices (`host:devices-l`).
pub async fn list_devices(server: SocketAddrV4) -> Result<Vec<ListedDevice>, DeviceError> {
    let body = host_request(server, "host:devices-l", Duration::from_secs(5)).await?;
    Ok(body
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let serial = w.next()?.to_string();
            let state = w.next()?.to_string();
            let mut model = None;
            let mut product = None;
            for f in w {
                if let Some(m) = f.strip_prefix("model:") {
                    model = Some(m.replace('_', " "));
                } else if let Some(p) = f.strip_prefix("product:") {
                    product = Some(p.to_string());
                }
            }
            Some(ListedDevice {
                serial,
                state,
                model,
                product,
            })
        })
        .collect())
}

/// `adb connect HOST:PORT` through the server.
pub async fn connect_device(server: SocketAddrV4, addr: SocketAddr) -> Result<String, DeviceError> {
    let reply = host_request(
        server,
        &format!("host:connect:{addr}"),
        Duration::from_secs(10),
    )
    .await?;
    if reply.contains("connected to") {
        Ok(reply)
    } else {
        Err(DeviceError::Server {
            server: server.to_string(),
            message: reply,
        })
    }
}

/// `adb disconnect HOST:PORT`.
pub async fn disconnect_device(server: SocketAddrV4, addr: SocketAddr) -> Result<(), DeviceError> {
    host_request(
        server,
        &format!("host:disconnect:{addr}"),
        Duration::from_secs(5),
    )
    .await
    .map(|_| ())
}

/// Starts an adb server on `server`'s port if none answers (`adb -P PORT start-server`).
pub async fn ensure_server(server: SocketAddrV4) -> Result<(), DeviceError> {
    if host_request(server, "host:version", Duration::from_secs(2))
        .await
        .is_ok()
    {
        return Ok(());
    }
    let out = tokio::process::Command::new("adb")
        .args(["-P", &server.port().to_string(), "start-server"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| DeviceError::Server {
            server: server.to_string(),
            message: format!("cannot run adb: {e}"),
        })?;
    if !out.status.success() {
        return Err(DeviceError::Server {
            server: server.to_string(),
            message: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// Whether a device at `addr` asks for AUTH (one raw CNXN exchange).
pub async fn direct_needs_auth(addr: SocketAddr) -> Result<bool, DeviceError> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        let payload = b"host::matador\0";
        let mut m = Vec::new();
        let sum: u32 = payload.iter().map(|&b| u32::from(b)).sum();
        for w in [
            0x4e58_4e43u32,
            0x0100_0000,
            1 << 20,
            payload.len() as u32,
            sum,
            0x4e58_4e43 ^ 0xffff_ffff,
        ] {
            m.extend_from_slice(&w.to_le_bytes());
        }
        m.extend_from_slice(payload);
        s.write_all(&m).await?;
        let mut h = [0u8; 24];
        s.read_exact(&mut h).await?;
        Ok::<bool, std::io::Error>(&h[..4] == b"AUTH")
    };
    match tokio::time::timeout(Duration::from_secs(5), fut).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(DeviceError::NoDevice {
            device: addr.to_string(),
            message: e.to_string(),
        }),
        Err(_) => Err(DeviceError::Timeout {
            device: addr.to_string(),
            what: "CNXN".into(),
            after: Duration::from_secs(5),
        }),
    }
}

/// The largest payload a device may announce: ADB's own maximum (1 MiB,
/// what our CNXN offers). A header claiming more (up to 4 GiB) would make
/// adb_client allocate that much, so it never reaches adb_client.
pub const MAX_DEVICE_PAYLOAD: usize = 1 << 20;

/// Tracks ADB message boundaries in the device→host byte stream, so a reset
/// can end the stream on a boundary followed by an invalid header, and holds
/// each header back until it is complete and its length is sane.
///
/// Why: adb_client's direct-TCP read loop treats a 0-byte read as "try
/// again", and a failed session's `Drop` drains the socket, so any end of
/// file (FIN or RST) makes the worker thread spin forever. Instead the relay
/// sends an invalid header (command 0): adb_client returns `ConversionError`,
/// its drain times out on the still-open socket, and the worker drops the
/// connection. adb_client also allocates whatever length a header claims.
#[derive(Debug, Default)]
pub struct Framer {
    header: Vec<u8>,
    payload_left: usize,
}

impl Framer {
    /// Takes bytes from the device and returns those that may be forwarded
    /// to adb_client now (payload at once, headers once complete), or `None`
    /// when a header claims more than [`MAX_DEVICE_PAYLOAD`] (the
    /// connection is then reset with [`Framer::poison`]).
    pub fn feed(&mut self, mut data: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len());
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len());
                out.extend_from_slice(&data[..n]);
                self.payload_left -= n;
                data = &data[n..];
                continue;
            }
            let n = (24 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() == 24 {
                let len = Self::length(&self.header);
                if len > MAX_DEVICE_PAYLOAD {
                    // Not forwarded: the host has seen whole messages only.
                    self.header.clear();
                    return None;
                }
                out.extend_from_slice(&self.header);
                self.payload_left = len;
                self.header.clear();
            }
        }
        Some(out)
    }

    fn length(h: &[u8]) -> usize {
        u32::from_le_bytes([h[12], h[13], h[14], h[15]]) as usize
    }

    /// Bytes that complete the message being forwarded (zeros: its checksum
    /// or magic then fails) and a header adb_client cannot decode. A header
    /// held back was never forwarded, so it needs nothing.
    pub fn poison(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.payload_left];
        out.extend_from_slice(&[0u8; 24]);
        out
    }
}

/// The watchdog relay.
#[derive(Debug)]
struct Relay {
    addr: SocketAddr,
    reset: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// `direct`: the upstream is a device speaking the ADB transport (not an
    /// adb server); its end of file is then treated as a reset too.
    async fn start(upstream: SocketAddr, direct: bool) -> std::io::Result<Relay> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let (reset, rx) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            loop {
                let Ok((down, _)) = l.accept().await else {
                    continue;
                };
                let mut rx = rx.clone();
                rx.borrow_and_update();
                tokio::spawn(relay_conn(down, upstream, direct, rx));
            }
        });
        Ok(Relay { addr, reset, task })
    }

    fn reset_all(&self) {
        self.reset.send_modify(|g| *g += 1);
    }
}

/// How long the relay waits for the upstream (adb server, device) to accept.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(10);

/// Copies one client connection to and from the upstream until either side
/// ends or a reset is requested.
async fn relay_conn(
    down: TcpStream,
    upstream: SocketAddr,
    direct: bool,
    mut rx: watch::Receiver<u64>,
) {
    // A device that is gone may leave the connect unanswered (a dropped
    // SYN): bounded, and a reset (timeout, cancel) ends it at once, so the
    // host side gets a reset instead of waiting for a CNXN forever.
    let up = tokio::select! {
        r = tokio::time::timeout(UPSTREAM_CONNECT, TcpStream::connect(upstream)) => r.ok().and_then(Result::ok),
        _ = rx.changed() => None,
    };
    let Some(up) = up else {
        let _ = down.set_zero_linger();
        return;
    };
    let _ = up.set_nodelay(true);
    let _ = down.set_nodelay(true);
    let (mut dr, mut dw) = down.into_split();
    let (mut ur, mut uw) = up.into_split();
    let mut framer = Framer::default();
    let mut from_up = vec![0u8; 64 * 1024];
    let mut from_down = vec![0u8; 64 * 1024];
    let mut down_open = true;
    let reset = loop {
        tokio::select! {
            r = ur.read(&mut from_up) => match r {
                Ok(0) | Err(_) => break direct,
                Ok(n) => {
                    let ok = if direct {
                        match framer.feed(&from_up[..n]) {
                            Some(out) => dw.write_all(&out).await.is_ok(),
                            // A hostile length: reset, as for an end of file.
                            None => break true,
                        }
                    } else {
                        dw.write_all(&from_up[..n]).await.is_ok()
                    };
                    if !ok {
                        return;
                    }
                }
            },
            r = dr.read(&mut from_down), if down_open => match r {
                Ok(0) | Err(_) => {
                    down_open = false;
                    let _ = uw.shutdown().await;
                }
                Ok(n) => {
                    // adb_client writes a message's header and payload
                    // separately; with Nagle on its socket the payload waits
                    // for our ACK, so ACK at once instead of delaying it.
                    let _ = AsRef::<TcpStream>::as_ref(&dr).set_quickack(true);
                    if uw.write_all(&from_down[..n]).await.is_err() {
                        break true;
                    }
                }
            },
            _ = rx.changed() => break true,
        }
    };
    drop((ur, uw));
    if reset && direct {
        // Keep the socket open after the poison: adb_client drains a failed
        // session with short read timeouts, and an end of file would make that
        // drain spin forever. It closes its side when the worker drops it.
        let _ = tokio::time::timeout(Duration::from_secs(5), dw.write_all(&framer.poison())).await;
        let _ = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(n) = dr.read(&mut from_down).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    } else if let Ok(down) = dr.reunite(dw) {
        if reset {
            let _ = down.set_zero_linger();
        }
        drop(down);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Conn {
    Server(SocketAddrV4, String),
    /// The relay's address and the session with the relay generation it
    /// was opened in: a reset since then poisoned it, so it is reopened.
    Direct(SocketAddr, Option<(ADBTcpDevice, u64)>),
}

/// A call for the worker thread: the connection and the relay generation.
type Job = Box<dyn FnOnce(&mut Conn, u64) + Send>;

/// Output of a shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutput {
    /// Standard output (with stderr merged for direct TCP, which uses shell v1).
    pub stdout: String,
    /// Standard error (through the server).
    pub stderr: String,
    /// Exit status of the command.
    pub rc: i32,
}

const RC_MARK: &str = "__MATADOR_RC=";

/// Wraps a command so its exit status is printed after it. Workaround:
/// adb_client 3.2.3's `shell_command` returns no exit code over direct TCP
/// (shell v1), and through the adb server (shell v2) it reads the
/// exit-status packet but returns `None` at the end of stream that follows
/// (tests/adb_client_defects.rs shows both; drop this when it fails). The
/// marker also tells a finished command from a lost connection.
pub fn wrap_rc(cmd: &str) -> String {
    format!("{cmd}\necho \"{RC_MARK}$?\"")
}

/// Splits the marker off wrapped output: (stdout, rc).
pub fn split_rc(out: &str) -> Option<(String, i32)> {
    let pos = out.rfind(RC_MARK)?;
    let rc = out[pos + RC_MARK.len()..].trim().parse().ok()?;
    Some((out[..pos].to_string(), rc))
}

/// A device connection: worker thread + watchdog relay.
pub struct Adb {
    /// How the device is reached.
    pub target: Target,
    name: String,
    jobs: std::sync::mpsc::Sender<Job>,
    relay: Arc<Relay>,
    /// Set by [`Adb::cancel`]: every call fails at once (also one already
    /// waiting for its answer) until [`Adb::resume`].
    cancelled: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for Adb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adb").field("target", &self.target).finish()
    }
}

fn map_adb(device: &str, e: adb_client::RustADBError) -> DeviceError {
    let m = e.to_string();
    let low = m.to_lowercase();
    if low.contains("unauthorized") {
        DeviceError::Unauthorized {
            device: device.to_string(),
        }
    } else if low.contains("not found")
        || low.contains("no devices")
        || low.contains("offline")
        || low.contains("connection refused")
    {
        DeviceError::NoDevice {
            device: device.to_string(),
            message: m,
        }
    } else {
        DeviceError::Adb {
            device: device.to_string(),
            message: m,
        }
    }
}

impl Adb {
    /// Opens a device. Through a server, the serial must be listed in state
    /// `device`; directly, the phone must answer CNXN without an unanswered
    /// AUTH prompt.
    pub async fn open(target: Target) -> Result<Adb, DeviceError> {
        let name = target.name();
        match &target {
            Target::Server { server, serial } => {
                let list = list_devices(*server).await?;
                match list.iter().find(|d| &d.serial == serial) {
                    None => {
                        return Err(DeviceError::NoDevice {
                            device: serial.clone(),
                            message: format!(
                                "not listed by the adb server at {server} (listed: {})",
                                list.iter()
                                    .map(|d| format!("{} {}", d.serial, d.state))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        });
                    }
                    Some(d) if d.state == "unauthorized" => {
                        return Err(DeviceError::Unauthorized {
                            device: serial.clone(),
                        });
                    }
                    Some(d) if d.state != "device" => {
                        return Err(DeviceError::NoDevice {
                            device: serial.clone(),
                            message: format!("state {}", d.state),
                        });
                    }
                    Some(_) => {}
                }
            }
            Target::Direct(addr) => {
                let _ = direct_needs_auth(*addr).await?;
            }
        }
        let (upstream, direct) = match &target {
            Target::Server { server, .. } => (SocketAddr::V4(*server), false),
            Target::Direct(a) => (*a, true),
        };
        let relay = Arc::new(Relay::start(upstream, direct).await?);
        let relay_addr = relay.addr;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let generation = relay.reset.subscribe();
        let mut conn = match &target {
            Target::Server { serial, .. } => Conn::Server(
                SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, relay_addr.port()),
                serial.clone(),
            ),
            Target::Direct(_) => Conn::Direct(relay_addr, None),
        };
        std::thread::Builder::new()
            .name(format!("adb-{name}"))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    // Copied out: a borrow held during the job would block
                    // the reset that is to unblock it.
                    let now = *generation.borrow();
                    if let Conn::Direct(_, Some((_, g))) = &conn
                        && *g != now
                    {
                        // Reset (a timeout or a cancel) since it was opened:
                        // the relay poisoned it, so it is opened anew.
                        conn = match conn {
                            Conn::Direct(a, _) => Conn::Direct(a, None),
                            other => other,
                        };
                    }
                    job(&mut conn, now);
                }
            })?;
        let adb = Adb {
            name: target.name(),
            target,
            jobs: tx,
            relay,
            cancelled: Arc::new(watch::channel(false).0),
        };
        if let Target::Direct(addr) = adb.target {
            // Connect now so an unanswered AUTH prompt shows up as such.
            let needs_auth = direct_needs_auth(addr).await?;
            let r = adb
                .call(Duration::from_secs(15), "connect", |_d| Ok(()))
                .await;
            if let Err(e) = r {
                return Err(if needs_auth {
                    DeviceError::Unauthorized {
                        device: addr.to_string(),
                    }
                } else {
                    e
                });
            }
        }
        Ok(adb)
    }

    /// The name errors use (the serial or address unless renamed).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names the device in errors (e.g. `lab-a (127.0.0.1:5555)`).
    pub fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }

    /// Cancels what is in flight: the relay resets its connections (an adb
    /// shell stream in progress is closed) and every call, queued or new,
    /// fails until [`Adb::resume`]. A step that timed out uses it so the
    /// abandoned action cannot go on driving the phone during a retry.
    pub fn cancel(&self) {
        self.cancelled.send_replace(true);
        self.relay.reset_all();
    }

    /// Accepts calls again after [`Adb::cancel`].
    pub fn resume(&self) {
        self.cancelled.send_replace(false);
    }

    fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// How the device looks now: `Ok` when it answers (listed as `device`
    /// by the adb server; its adbd accepts a TCP connection), else why it
    /// is gone. A cancel uses it not to wait on a phone that is unplugged.
    pub async fn presence(&self) -> Result<(), String> {
        match &self.target {
            Target::Server { server, serial } => match list_devices(*server).await {
                Ok(l) => match l.iter().find(|d| &d.serial == serial) {
                    Some(d) if d.state == "device" => Ok(()),
                    Some(d) => Err(format!("the adb server lists it as {}", d.state)),
                    None => Err("the adb server no longer lists it".into()),
                },
                Err(e) => Err(e.to_string()),
            },
            Target::Direct(addr) => {
                match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("its adbd at {addr} refuses connections: {e}")),
                    Err(_) => Err(format!("its adbd at {addr} does not answer")),
                }
            }
        }
    }

    fn cancelled_error(&self, what: &str) -> DeviceError {
        DeviceError::Adb {
            device: self.name.clone(),
            message: format!("{what}: cancelled (the step's deadline passed)"),
        }
    }

    /// Runs `f` with the adb_client device on the worker thread, under a
    /// timeout enforced by the watchdog relay.
    pub async fn call<T: Send + 'static>(
        &self,
        timeout: Duration,
        what: &str,
        f: impl FnOnce(&mut dyn ADBDeviceExt) -> Result<T, adb_client::RustADBError> + Send + 'static,
    ) -> Result<T, DeviceError> {
        if self.is_cancelled() {
            return Err(self.cancelled_error(what));
        }
        let (otx, orx) = tokio::sync::oneshot::channel();
        let name = self.name.clone();
        let name2 = name.clone();
        let cancelled = self.cancelled.clone();
        let what2 = what.to_string();
        let job: Job = Box::new(move |conn: &mut Conn, generation: u64| {
            // A job queued before a cancel must not reach the phone after it.
            if *cancelled.borrow() {
                let _ = otx.send(Err(DeviceError::Adb {
                    device: name2,
                    message: format!("{what2}: cancelled (the step's deadline passed)"),
                }));
                return;
            }
            let r = match conn {
                Conn::Server(addr, serial) => {
                    let mut d = ADBServerDevice::new(serial.clone(), Some(*addr));
                    f(&mut d).map_err(|e| map_adb(&name2, e))
                }
                Conn::Direct(addr, dev) => {
                    if dev.is_none() {
                        let key = std::env::temp_dir().join("matador-adbkey");
                        match ADBTcpDevice::new_with_custom_private_key(*addr, &key) {
                            Ok(d) => *dev = Some((d, generation)),
                            Err(e) => {
                                let _ = otx.send(Err(map_adb(&name2, e)));
                                return;
                            }
                        }
                    }
                    let Some((d, _)) = dev.as_mut() else { return };
                    let r = f(d).map_err(|e| map_adb(&name2, e));
                    if r.is_err() {
                        // The session may be broken: reconnect next time.
                        *dev = None;
                    }
                    r
                }
            };
            let _ = otx.send(r);
        });
        self.jobs.send(job).map_err(|_| DeviceError::Adb {
            device: name.clone(),
            message: "adb worker thread ended".into(),
        })?;
        let mut orx = orx;
        let mut cancel = self.cancelled.subscribe();
        // A cancel ends the wait at once, whatever the worker is blocked on
        // (a transport that never answers included); the relay reset it
        // made unblocks the worker for the next call.
        let answer = tokio::select! {
            a = tokio::time::timeout(timeout, &mut orx) => a,
            _ = cancel.wait_for(|c| *c) => return Err(self.cancelled_error(what)),
        };
        match answer {
            Ok(Ok(Err(_))) if self.is_cancelled() => Err(self.cancelled_error(what)),
            Ok(Ok(Err(e))) => Err(self.explain(e).await),
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(DeviceError::Adb {
                device: name,
                message: format!("{what}: worker dropped the call"),
            }),
            Err(_) => {
                self.relay.reset_all();
                // The reset unblocks the worker; give it a moment to report.
                let _ = tokio::time::timeout(Duration::from_secs(5), orx).await;
                Err(DeviceError::Timeout {
                    device: name,
                    what: what.to_string(),
                    after: timeout,
                })
            }
        }
    }

    /// A failed call through a server is explained: a device the server no
    /// longer lists as `device` is reported as gone (unplugged), a server
    /// that no longer answers as the server being gone, both naming the
    /// device, instead of a bare protocol error.
    async fn explain(&self, e: DeviceError) -> DeviceError {
        let Target::Server { server, serial } = &self.target else {
            return e;
        };
        if matches!(
            e,
            DeviceError::NoDevice { .. } | DeviceError::Unauthorized { .. }
        ) {
            return e;
        }
        match list_devices(*server).await {
            Ok(list) => match list.iter().find(|d| &d.serial == serial) {
                Some(d) if d.state == "device" => e,
                found => DeviceError::NoDevice {
                    device: self.name.clone(),
                    message: format!(
                        "{} (unplugged?); the call failed with: {e}",
                        found.map_or("no longer listed by the adb server".to_string(), |d| {
                            format!("adb server lists it as {}", d.state)
                        })
                    ),
                },
            },
            Err(probe) => {
                let why = match probe {
                    DeviceError::Server { message, .. } => message,
                    other => other.to_string(),
                };
                DeviceError::Server {
                    server: server.to_string(),
                    message: format!(
                        "not reachable ({why}), so {} cannot be reached; the call failed with: {e}",
                        self.name
                    ),
                }
            }
        }
    }

    /// Runs a shell command and returns its output and exit status.
    pub async fn shell(&self, cmd: &str, timeout: Duration) -> Result<ShellOutput, DeviceError> {
        let wrapped = wrap_rc(cmd);
        let (out, err) = self
            .call(timeout, cmd, move |d| {
                let mut out = Vec::new();
                let mut err = Vec::new();
                d.shell_command(&wrapped, Some(&mut out), Some(&mut err))?;
                Ok((out, err))
            })
            .await?;
        let out = String::from_utf8_lossy(&out).into_owned();
        let Some((stdout, rc)) = split_rc(&out) else {
            if self.is_cancelled() {
                return Err(self.cancelled_error(cmd));
            }
            // The stream ended before the command did: the connection was lost.
            let state = match &self.target {
                Target::Server { server, serial } => match list_devices(*server).await {
                    Ok(l) => l
                        .into_iter()
                        .find(|d| &d.serial == serial)
                        .map_or("not listed by the adb server".into(), |d| {
                            format!("adb server lists it as {}", d.state)
                        }),
                    Err(e) => e.to_string(),
                },
                Target::Direct(_) => "TCP connection closed".into(),
            };
            return Err(DeviceError::NoDevice {
                device: self.name.clone(),
                message: format!(
                    "connection lost during `{cmd}` (unplugged? {state}); output so far: {out:?}"
                ),
            });
        };
        Ok(ShellOutput {
            stdout,
            stderr: String::from_utf8_lossy(&err).into_owned(),
            rc,
        })
    }

    /// Copies a local file's bytes to the device.
    pub async fn push(
        &self,
        data: Vec<u8>,
        remote: &str,
        timeout: Duration,
    ) -> Result<(), DeviceError> {
        let remote = remote.to_string();
        self.call(timeout, &format!("push {remote}"), move |d| {
            d.push(&mut std::io::Cursor::new(data), &remote)
        })
        .await
    }

    /// Reads a file from the device.
    pub async fn pull(&self, remote: &str, timeout: Duration) -> Result<Vec<u8>, DeviceError> {
        let r = remote.to_string();
        self.call(timeout, &format!("pull {remote}"), move |d| {
            let mut out = Vec::new();
            d.pull(&r, &mut out)?;
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rc_marker() {
        assert_eq!(split_rc("abc\n__MATADOR_RC=0\n"), Some(("abc\n".into(), 0)));
        assert_eq!(split_rc("abc__MATADOR_RC=127\n"), Some(("abc".into(), 127)));
        assert_eq!(split_rc("abc"), None);
        assert!(wrap_rc("ls").starts_with("ls\n"));
    }

    fn header(len: u32) -> Vec<u8> {
        let mut h = vec![0x57, 0x52, 0x54, 0x45, 1, 0, 0, 0, 2, 0, 0, 0];
        h.extend_from_slice(&len.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h
    }

    #[test]
    fn framer_completes_the_message_then_poisons() {
        let mut f = Framer::default();
        assert_eq!(f.poison(), vec![0; 24]);
        let mut m = header(10);
        m.extend_from_slice(b"0123456789");
        assert_eq!(f.feed(&m), Some(m.clone()));
        assert_eq!(f.poison().len(), 24);
        // A partial header is held back: nothing of it reached the host.
        assert_eq!(f.feed(&header(100)[..14]), Some(vec![]));
        assert_eq!(f.poison().len(), 24);
        assert_eq!(f.feed(&header(100)[14..]), Some(header(100)));
        assert_eq!(f.feed(&[7; 30]), Some(vec![7; 30]));
        assert_eq!(f.poison().len(), 70 + 24);
        assert_eq!(f.feed(&[7; 70]), Some(vec![7; 70]));
        assert_eq!(f.poison().len(), 24);
    }

    #[test]
    fn framer_refuses_a_4_gib_length() {
        let mut f = Framer::default();
        let mut m = header(4);
        m.extend_from_slice(b"okay");
        m.extend_from_slice(&header(u32::MAX));
        assert_eq!(f.feed(&m), None);
        // The poison stays small: the hostile header was never forwarded.
        assert_eq!(f.poison().len(), 24);
        let mut g = Framer::default();
        let h = header(MAX_DEVICE_PAYLOAD as u32);
        assert_eq!(g.feed(&h), Some(h.clone()));
    }
}
