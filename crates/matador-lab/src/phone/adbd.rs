//! The simulated adbd: ADB transport over TCP (CNXN, optional AUTH, OPEN,
//! OKAY, WRTE, CLSE) and the services `shell:` (v1 and v2), `exec:` and
//! `sync:`. Streams are routed by id; one WRTE is in flight per stream.

use super::config::AuthMode;
use super::shell::{NetHooks, Shell};
use super::state::Phone;
use super::sync;
use super::wire::*;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// Events delivered to a stream's service.
#[derive(Debug)]
pub enum StreamEvent {
    /// Data from the host.
    Data(Vec<u8>),
    /// The host acknowledged our last WRTE.
    Okay,
    /// The host closed the stream.
    Close,
}

/// A service's end of one stream.
#[derive(Debug)]
pub struct StreamIo {
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<StreamEvent>,
    ours: u32,
    theirs: u32,
    max: usize,
    awaiting: bool,
    inbox: VecDeque<Vec<u8>>,
    closed: bool,
}

impl StreamIo {
    /// Sends data, waiting for the previous WRTE's OKAY first; false once closed.
    pub async fn write(&mut self, data: &[u8]) -> bool {
        for chunk in data.chunks(self.max.max(1)) {
            if !self.wait_okay().await {
                return false;
            }
            if self
                .tx
                .send(Message::new(A_WRTE, self.ours, self.theirs, chunk.to_vec()))
                .is_err()
            {
                self.closed = true;
                return false;
            }
            self.awaiting = true;
        }
        true
    }

    async fn wait_okay(&mut self) -> bool {
        while self.awaiting {
            if self.closed {
                return false;
            }
            match self.rx.recv().await {
                Some(StreamEvent::Okay) => self.awaiting = false,
                Some(StreamEvent::Data(d)) => self.inbox.push_back(d),
                Some(StreamEvent::Close) | None => {
                    self.closed = true;
                    return false;
                }
            }
        }
        !self.closed
    }

    /// Next data from the host; `None` once the host closed the stream.
    pub async fn read(&mut self) -> Option<Vec<u8>> {
        if let Some(d) = self.inbox.pop_front() {
            return Some(d);
        }
        loop {
            if self.closed {
                return None;
            }
            match self.rx.recv().await {
                Some(StreamEvent::Data(d)) => return Some(d),
                Some(StreamEvent::Okay) => self.awaiting = false,
                Some(StreamEvent::Close) | None => {
                    self.closed = true;
                    return None;
                }
            }
        }
    }

    /// Closes the stream without waiting for a pending OKAY (adb_client
    /// never acknowledges a sync session's last reply).
    pub fn close(&mut self) {
        if !self.closed {
            let _ = self
                .tx
                .send(Message::new(A_CLSE, self.ours, self.theirs, Vec::new()));
            self.closed = true;
        }
    }
}

/// Everything a connection needs.
pub struct AdbContext {
    /// The phone.
    pub phone: Arc<Mutex<Phone>>,
    /// Network hooks for the shell.
    pub net: Arc<dyn NetHooks>,
}

impl std::fmt::Debug for AdbContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdbContext")
    }
}

fn banner(phone: &Phone) -> Vec<u8> {
    let c = &phone.cfg;
    format!(
        "device::ro.product.name={};ro.product.model={};ro.product.device={};features=shell_v2,cmd",
        c.device, c.model, c.device
    )
    .into_bytes()
}

fn token() -> Vec<u8> {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
        | 1;
    (0..20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Serves ADB on `listener` until `plugged` turns false (the cable is pulled);
/// open connections are then dropped.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<AdbContext>,
    mut plugged: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            acc = listener.accept() => {
                if let Ok((sock, _)) = acc {
                    let _ = sock.set_nodelay(true);
                    conns.spawn(connection(sock, ctx.clone()));
                }
            }
            ch = plugged.changed() => {
                if ch.is_err() || !*plugged.borrow() {
                    break;
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
}

async fn connection(sock: TcpStream, ctx: Arc<AdbContext>) {
    let (mut rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if wr.write_all(&m.encode()).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut streams: HashMap<u32, (u32, mpsc::UnboundedSender<StreamEvent>)> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id: u32 = 1;
    let mut online = false;
    let mut max_payload = MAX_PAYLOAD as usize;
    let auth = ctx.phone.lock().map(|p| p.cfg.auth).unwrap_or_default();
    loop {
        let msg = match read_message(&mut rd).await {
            Ok(Some(m)) => m,
            _ => break,
        };
        match msg.command {
            A_CNXN => {
                max_payload = (msg.arg1 as usize).clamp(4096, MAX_PAYLOAD as usize);
                if auth == AuthMode::None {
                    online = true;
                    let b = banner(&ctx.phone.lock().unwrap_or_else(|e| e.into_inner()));
                    let _ = tx.send(Message::new(A_CNXN, A_VERSION, MAX_PAYLOAD, b));
                } else {
                    let _ = tx.send(Message::new(A_AUTH, 1, 0, token()));
                }
            }
            A_AUTH if !online => match (msg.arg0, auth) {
                // A signature: we know no keys, so ask again (the host then
                // offers its public key).
                (2, _) => {
                    let _ = tx.send(Message::new(A_AUTH, 1, 0, token()));
                }
                (3, AuthMode::Accept) => {
                    online = true;
                    let b = banner(&ctx.phone.lock().unwrap_or_else(|e| e.into_inner()));
                    let _ = tx.send(Message::new(A_CNXN, A_VERSION, MAX_PAYLOAD, b));
                }
                // Deny: the "Allow USB debugging?" prompt is never answered.
                _ => {}
            },
            A_OPEN if online => {
                let theirs = msg.arg0;
                let service = String::from_utf8_lossy(&msg.data)
                    .trim_end_matches('\0')
                    .to_string();
                let Some(kind) = Service::parse(&service) else {
                    let _ = tx.send(Message::new(A_CLSE, 0, theirs, Vec::new()));
                    continue;
                };
                let ours = next_id;
                next_id = next_id.wrapping_add(1).max(1);
                let (etx, erx) = mpsc::unbounded_channel();
                streams.insert(ours, (theirs, etx));
                let _ = tx.send(Message::new(A_OKAY, ours, theirs, Vec::new()));
                let io = StreamIo {
                    tx: tx.clone(),
                    rx: erx,
                    ours,
                    theirs,
                    max: max_payload,
                    awaiting: false,
                    inbox: VecDeque::new(),
                    closed: false,
                };
                tasks.spawn(run_service(kind, io, ctx.clone()));
            }
            A_WRTE if online => {
                let ours = msg.arg1;
                if let Some((theirs, etx)) = streams.get(&ours) {
                    let _ = tx.send(Message::new(A_OKAY, ours, *theirs, Vec::new()));
                    if etx.send(StreamEvent::Data(msg.data)).is_err() {
                        streams.remove(&ours);
                    }
                }
            }
            A_OKAY if online => {
                if let Some((_, etx)) = streams.get(&msg.arg1)
                    && etx.send(StreamEvent::Okay).is_err()
                {
                    streams.remove(&msg.arg1);
                }
            }
            A_CLSE if online => {
                if let Some((_, etx)) = streams.remove(&msg.arg1) {
                    let _ = etx.send(StreamEvent::Close);
                }
            }
            _ => {}
        }
    }
    drop(streams);
    tasks.abort_all();
    drop(tx);
    writer.abort();
}

/// A service requested by OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// `shell[,v2,…]:cmd` (empty cmd: interactive) or `exec:cmd`.
    Shell {
        /// Command line.
        cmd: String,
        /// Shell protocol v2 packets.
        v2: bool,
    },
    /// `sync:`.
    Sync,
    /// A service answered with a fixed text (`root:`, `remount:`, …).
    Text(String),
}

impl Service {
    /// Parses an OPEN destination.
    pub fn parse(s: &str) -> Option<Service> {
        if let Some(rest) = s.strip_prefix("exec:") {
            return Some(Service::Shell {
                cmd: rest.to_string(),
                v2: false,
            });
        }
        if s == "sync:" {
            return Some(Service::Sync);
        }
        if let Some(rest) = s.strip_prefix("shell") {
            let (opts, cmd) = rest.split_once(':')?;
            let v2 = opts.split(',').any(|o| o == "v2");
            return Some(Service::Shell {
                cmd: cmd.to_string(),
                v2,
            });
        }
        match s {
            "root:" => Some(Service::Text(
                "adbd cannot run as root in production builds\n".into(),
            )),
            "unroot:" => Some(Service::Text("adbd not running as root\n".into())),
            "remount:" => Some(Service::Text(
                "Not running as root. Try \"adb root\" first.\n".into(),
            )),
            _ => None,
        }
    }
}

async fn run_service(kind: Service, mut io: StreamIo, ctx: Arc<AdbContext>) {
    match kind {
        Service::Text(t) => {
            io.write(t.as_bytes()).await;
            io.close();
        }
        Service::Sync => {
            sync::serve(&mut io, &ctx.phone).await;
            io.close();
        }
        Service::Shell { cmd, v2 } => {
            shell(&mut io, ctx, cmd, v2).await;
            io.close();
        }
    }
}

fn v2_packet(id: u8, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + data.len());
    p.push(id);
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    p.extend_from_slice(data);
    p
}

/// Holds a command while a stall is armed ([`super::state::InputStall`]);
/// false when the host closed the stream meanwhile (the command never runs).
async fn hold_stalled(io: &mut StreamIo, ctx: &AdbContext, cmd: &str) -> bool {
    let stall = {
        let mut p = ctx.phone.lock().unwrap_or_else(|e| e.into_inner());
        match &p.stall_input {
            Some(s) if cmd.contains(&s.command) => p.stall_input.take(),
            _ => None,
        }
    };
    let Some(mut stall) = stall else {
        return true;
    };
    if let Some(b) = stall.begun.take() {
        let _ = b.send(());
    }
    let until = tokio::time::Instant::now() + stall.hold;
    let ran = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => break true,
            d = io.read() => if d.is_none() { break false },
        }
    };
    let _ = stall.outcome.send(ran);
    ran
}

/// Writes shell output into a channel (from the blocking interpreter thread).
struct ChanWriter {
    kind: u8,
    tx: mpsc::UnboundedSender<(u8, Vec<u8>)>,
}

impl std::io::Write for ChanWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .send((self.kind, buf.to_vec()))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn shell(io: &mut StreamIo, ctx: Arc<AdbContext>, cmd: String, v2: bool) {
    if !hold_stalled(io, &ctx, &cmd).await {
        return;
    }
    let (otx, mut orx) = mpsc::unbounded_channel::<(u8, Vec<u8>)>();
    let (ltx, lrx) = std::sync::mpsc::channel::<Option<String>>();
    let interactive = cmd.trim().is_empty();
    let phone = ctx.phone.clone();
    let net = ctx.net.clone();
    let prompt = {
        let p = phone.lock().unwrap_or_else(|e| e.into_inner());
        format!("{}:/ $ ", p.cfg.device)
    };
    let worker = tokio::task::spawn_blocking(move || {
        let mut sh = Shell::new(phone, net);
        let mut out = ChanWriter {
            kind: 1,
            tx: otx.clone(),
        };
        let mut err = ChanWriter {
            kind: 2,
            tx: otx.clone(),
        };
        let code = if interactive {
            let _ = otx.send((1, prompt.clone().into_bytes()));
            let mut code = 0;
            while let Ok(Some(line)) = lrx.recv() {
                code = sh.run_line(&line, &mut out, &mut err);
                if sh.exit.is_some() {
                    break;
                }
                let _ = otx.send((1, prompt.clone().into_bytes()));
            }
            code
        } else {
            sh.run_line(&cmd, &mut out, &mut err)
        };
        let _ = otx.send((3, vec![code as u8]));
    });
    let mut stdin_buf: Vec<u8> = Vec::new();
    let mut v2_in: Vec<u8> = Vec::new();
    let mut input_open = true;
    loop {
        tokio::select! {
            chunk = orx.recv() => {
                let Some((kind, data)) = chunk else { break };
                let bytes = if v2 { v2_packet(kind, &data) } else if kind == 3 { Vec::new() } else { data };
                if !bytes.is_empty() && !io.write(&bytes).await {
                    break;
                }
                if kind == 3 {
                    break;
                }
            }
            data = io.read(), if input_open => {
                let Some(data) = data else {
                    input_open = false;
                    let _ = ltx.send(None);
                    continue;
                };
                let mut plain = Vec::new();
                if v2 {
                    v2_in.extend_from_slice(&data);
                    while v2_in.len() >= 5 {
                        let len = u32::from_le_bytes([v2_in[1], v2_in[2], v2_in[3], v2_in[4]]) as usize;
                        if v2_in.len() < 5 + len {
                            break;
                        }
                        let id = v2_in[0];
                        let body: Vec<u8> = v2_in[5..5 + len].to_vec();
                        v2_in.drain(..5 + len);
                        match id {
                            0 => plain.extend_from_slice(&body),
                            4 => { let _ = ltx.send(None); }
                            _ => {}
                        }
                    }
                } else {
                    plain = data;
                }
                if interactive {
                    stdin_buf.extend_from_slice(&plain);
                    while let Some(pos) = stdin_buf.iter().position(|&b| b == b'\n' || b == b'\r') {
                        let line: Vec<u8> = stdin_buf.drain(..=pos).collect();
                        let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                        let _ = ltx.send(Some(line));
                    }
                }
            }
        }
    }
    drop(ltx);
    // A command still running (e.g. `sleep`) finishes on its own thread.
    drop(worker);
}
