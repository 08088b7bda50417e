//! An app backend relay for the lab: accepts the simulated apps' TLS-like
//! connections, registers each phone's account and relays messages to the
//! peer's connection (store-and-forward while the peer is offline). WeChat's
//! backend also answers the HTTP DNS `newgetdns` with a raw-DEFLATE XML list.
//! Fault knobs: drop messages, delay them (changeable at run time).

use super::apps::app_def;
use super::config::BackendConfig;
use super::proto::{Frame, decode_frame, encode_frame, read_record, server_handshake};
use flate2::Compression;
use flate2::write::DeflateEncoder;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Errors starting a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Unknown app id.
    #[error("backend: unknown app {0:?}")]
    UnknownApp(String),
    /// A listener could not bind.
    #[error("backend {app}: cannot listen on {addr}: {source}")]
    Bind {
        /// App id.
        app: String,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// Fault knobs, shared with the control socket.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Drop messages (acknowledge but never deliver).
    pub fail: bool,
    /// Delay before delivery, in milliseconds.
    pub delay_ms: u64,
}

#[derive(Debug, Default)]
struct Registry {
    online: HashMap<String, mpsc::UnboundedSender<Frame>>,
    /// Deliveries per account not yet confirmed by the client, by number:
    /// sent again on its next login (like a real messaging server's store).
    unconfirmed: HashMap<String, BTreeMap<u64, Frame>>,
    /// Last delivery number used.
    seq: u64,
    /// Message ids recently accepted per sender: a message sent again
    /// (its acknowledgement was lost with the connection) is acknowledged
    /// but not relayed twice.
    accepted: HashMap<
        String,
        (
            std::collections::HashSet<u64>,
            std::collections::VecDeque<u64>,
        ),
    >,
    relayed: u64,
}

/// Unconfirmed deliveries kept per account (oldest dropped beyond).
const MAX_UNCONFIRMED: usize = 10_000;
/// Accepted message ids remembered per sender.
const MAX_ACCEPTED: usize = 4096;

/// One message the backend wrote into the recipient's connection: the lab's
/// ground truth for receive times.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Sender's account.
    pub from: String,
    /// The text.
    pub text: String,
    /// Delivery number.
    pub seq: u64,
    /// Host time (unix s) right after the write into the recipient's socket.
    pub host_s: f64,
    /// Host time (unix s) the sender's message arrived at the backend.
    pub accepted_s: f64,
}

/// A running backend.
#[derive(Debug, Clone)]
pub struct Backend {
    /// App id.
    pub app: &'static str,
    /// Bound addresses.
    pub addrs: Vec<SocketAddr>,
    /// Fault knobs.
    pub faults: Arc<Mutex<Faults>>,
    reg: Arc<Mutex<Registry>>,
    newgetdns: Arc<std::collections::BTreeMap<String, IpAddr>>,
    log: Arc<Mutex<Vec<Delivery>>>,
    /// When each (sender, text) last arrived (for the delivery log).
    accepted: Arc<Mutex<HashMap<(String, String), f64>>>,
}

impl Backend {
    /// Binds the listeners and starts serving (inside a tokio runtime).
    pub async fn start(
        cfg: BackendConfig,
    ) -> Result<(Backend, Vec<tokio::task::JoinHandle<()>>), BackendError> {
        let def = app_def(&cfg.app).ok_or_else(|| BackendError::UnknownApp(cfg.app.clone()))?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for a in &cfg.listen {
            let l = TcpListener::bind(a)
                .await
                .map_err(|source| BackendError::Bind {
                    app: cfg.app.clone(),
                    addr: *a,
                    source,
                })?;
            addrs.push(l.local_addr().unwrap_or(*a));
            listeners.push(l);
        }
        let b = Backend {
            app: def.id,
            addrs,
            faults: Arc::new(Mutex::new(Faults {
                fail: cfg.fail,
                delay_ms: cfg.delay_ms,
            })),
            reg: Arc::new(Mutex::new(Registry {
                // Numbers from the clock: a restarted backend never reuses
                // numbers its clients already saw.
                seq: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_micros() as u64),
                ..Registry::default()
            })),
            newgetdns: Arc::new(cfg.newgetdns.clone()),
            log: Arc::new(Mutex::new(Vec::new())),
            accepted: Arc::new(Mutex::new(HashMap::new())),
        };
        let mut tasks = Vec::new();
        for l in listeners {
            let b2 = b.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((sock, _)) = l.accept().await else {
                        continue;
                    };
                    let b3 = b2.clone();
                    tokio::spawn(async move {
                        let _ = b3.connection(sock).await;
                    });
                }
            }));
        }
        Ok((b, tasks))
    }

    /// Every delivery written so far (a message sent again after a lost
    /// connection appears again), in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Messages relayed so far.
    pub fn relayed(&self) -> u64 {
        self.reg.lock().map(|r| r.relayed).unwrap_or(0)
    }

    async fn connection(&self, mut sock: TcpStream) -> std::io::Result<()> {
        let _ = sock.set_nodelay(true);
        let mut first = [0u8; 4];
        let n = sock.peek(&mut first).await?;
        if n >= 4 && (&first == b"GET " || &first == b"POST" || &first == b"HEAD") {
            return self.http(sock).await;
        }
        let (kind, _hello) = read_record(&mut sock).await?;
        if kind != 0x16 {
            return Ok(());
        }
        let seed = u64::from(sock.peer_addr().map(|a| a.port()).unwrap_or(1)) * 7919;
        server_handshake(&mut sock, seed).await?;
        let (mut rd, mut wr) = sock.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Frame>();
        let log = self.log.clone();
        let accepted = self.accepted.clone();
        let writer = tokio::spawn(async move {
            let mut nonce = seed;
            while let Some(f) = rx.recv().await {
                nonce = nonce.wrapping_add(1);
                if wr.write_all(&encode_frame(&f, nonce)).await.is_err() {
                    break;
                }
                if let Frame::Deliver { from, text, seq } = f {
                    let accepted_s = accepted
                        .lock()
                        .ok()
                        .and_then(|a| a.get(&(from.clone(), text.clone())).copied())
                        .unwrap_or(f64::NAN);
                    let host_s = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    if let Ok(mut l) = log.lock() {
                        l.push(Delivery {
                            from,
                            text,
                            seq,
                            host_s,
                            accepted_s,
                        });
                    }
                }
            }
        });
        let mut account: Option<String> = None;
        let result = loop {
            let (kind, body) = match read_record(&mut rd).await {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            if kind != 0x17 {
                continue;
            }
            let Some(frame) = decode_frame(&body) else {
                continue;
            };
            match frame {
                Frame::Hello { account: a } => {
                    let pending: Vec<Frame> = {
                        let mut reg = self.reg.lock().unwrap_or_else(|e| e.into_inner());
                        reg.online.insert(a.clone(), tx.clone());
                        reg.unconfirmed
                            .get(&a)
                            .map(|m| m.values().cloned().collect())
                            .unwrap_or_default()
                    };
                    for f in pending {
                        let _ = tx.send(f);
                    }
                    account = Some(a);
                }
                Frame::Received { seq } => {
                    if let Some(a) = &account {
                        let mut reg = self.reg.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(m) = reg.unconfirmed.get_mut(a) {
                            m.remove(&seq);
                        }
                    }
                }
                Frame::Msg { id, to, text } => {
                    let _ = tx.send(Frame::Ack { id });
                    let Some(from) = account.clone() else {
                        continue;
                    };
                    if let Ok(mut a) = self.accepted.lock() {
                        a.entry((from.clone(), text.clone())).or_insert_with(|| {
                            std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0.0, |d| d.as_secs_f64())
                        });
                    }
                    let faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
                    if faults.fail {
                        continue;
                    }
                    {
                        let mut reg = self.reg.lock().unwrap_or_else(|e| e.into_inner());
                        let (set, order) = reg.accepted.entry(from.clone()).or_default();
                        if !set.insert(id) {
                            continue; // sent again: already relayed
                        }
                        order.push_back(id);
                        if order.len() > MAX_ACCEPTED
                            && let Some(old) = order.pop_front()
                        {
                            set.remove(&old);
                        }
                    }
                    let reg = self.reg.clone();
                    tokio::spawn(async move {
                        if faults.delay_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
                        }
                        let mut r = reg.lock().unwrap_or_else(|e| e.into_inner());
                        r.relayed += 1;
                        r.seq += 1;
                        let seq = r.seq;
                        let f = Frame::Deliver { from, text, seq };
                        let store = r.unconfirmed.entry(to.clone()).or_default();
                        store.insert(seq, f.clone());
                        if store.len() > MAX_UNCONFIRMED {
                            store.pop_first();
                        }
                        // Kept until confirmed: a peer offline now gets it
                        // at its next login.
                        let sent = r.online.get(&to).is_some_and(|peer| peer.send(f).is_ok());
                        if !sent {
                            r.online.remove(&to);
                        }
                    });
                }
                Frame::Ping => {
                    let _ = tx.send(Frame::Pong);
                }
                _ => {}
            }
        };
        if let Some(a) = account {
            let mut reg = self.reg.lock().unwrap_or_else(|e| e.into_inner());
            if reg.online.get(&a).is_some_and(|s| s.same_channel(&tx)) {
                reg.online.remove(&a);
            }
        }
        writer.abort();
        result
    }

    /// Plain HTTP: WeChat's `newgetdns`, or a connectivity-check style 204.
    async fn http(&self, mut sock: TcpStream) -> std::io::Result<()> {
        let mut req = Vec::new();
        let mut buf = [0u8; 2048];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
            let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            if n == 0 {
                return Ok(());
            }
            req.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&req)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let path = line.split_whitespace().nth(1).unwrap_or("/");
        let (status, ctype, body) = if path.starts_with("/cgi-bin/micromsg-bin/newgetdns") {
            let own = sock.local_addr().map(|a| a.ip()).ok();
            let mut domains: Vec<(String, IpAddr)> = self
                .newgetdns
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            if domains.is_empty()
                && let Some(ip) = own
            {
                for d in [
                    "long.weixin.qq.com",
                    "short.weixin.qq.com",
                    "extshort.weixin.qq.com",
                ] {
                    domains.push((d.into(), ip));
                }
            }
            let client = sock
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default();
            (
                "200 OK",
                "text/xml",
                deflate(newgetdns_xml(&domains, &client).as_bytes()),
            )
        } else {
            ("204 No Content", "text/plain", Vec::new())
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(&body).await?;
        sock.shutdown().await
    }
}

/// WeChat's `newgetdns` answer (before compression).
pub fn newgetdns_xml(domains: &[(String, IpAddr)], client_ip: &str) -> String {
    let mut x = String::from("<dns><domainlist>");
    for (name, ip) in domains {
        x.push_str(&format!(
            "<domain name=\"{name}\" timeout=\"1800\"><ip>{ip}</ip></domain>"
        ));
    }
    x.push_str(&format!(
        "</domainlist><clientip>{client_ip}</clientip></dns>"
    ));
    x
}

/// Raw DEFLATE (no zlib header), as WeChat's HTTP DNS sends it.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::proto::client_handshake;

    /// A raw client: connects, logs in as `account`.
    struct Client {
        sock: TcpStream,
        nonce: u64,
    }

    impl Client {
        async fn login(addr: SocketAddr, account: &str) -> Client {
            let mut sock = TcpStream::connect(addr).await.unwrap();
            client_handshake(&mut sock, "g.whatsapp.net", 7)
                .await
                .unwrap();
            let mut c = Client { sock, nonce: 1 };
            c.send(&Frame::Hello {
                account: account.into(),
            })
            .await;
            c
        }

        async fn send(&mut self, f: &Frame) {
            self.nonce += 1;
            self.sock
                .write_all(&encode_frame(f, self.nonce))
                .await
                .unwrap();
        }

        /// Sends message `id` to `to` and expects its acknowledgement.
        async fn message(&mut self, id: u64, to: &str, text: &str) {
            self.send(&Frame::Msg {
                id,
                to: to.into(),
                text: text.into(),
            })
            .await;
            assert_eq!(self.next().await, Some(Frame::Ack { id }));
        }

        /// The next frame, or `None` after 500 ms of silence.
        async fn next(&mut self) -> Option<Frame> {
            loop {
                let r =
                    tokio::time::timeout(Duration::from_millis(500), read_record(&mut self.sock))
                        .await
                        .ok()?
                        .ok()?;
                if r.0 == 0x17 {
                    return decode_frame(&r.1);
                }
            }
        }
    }

    /// A delivery written into a connection that then dies unconfirmed is
    /// sent again at the recipient's next login, with the same number, and
    /// no more once confirmed; messages to an offline recipient wait; a
    /// message sent again with the same id is acknowledged, not relayed.
    #[tokio::test]
    async fn unconfirmed_deliveries_are_sent_again_at_next_login() {
        let (b, tasks) = Backend::start(BackendConfig {
            app: "whatsapp".into(),
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            delay_ms: 0,
            fail: false,
            newgetdns: BTreeMap::new(),
        })
        .await
        .unwrap();
        let addr = b.addrs[0];
        let mut bob = Client::login(addr, "bob").await;
        let mut alice = Client::login(addr, "alice").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        alice.message(1, "bob", "one").await;
        let Some(Frame::Deliver { from, text, seq }) = bob.next().await else {
            panic!("bob got no delivery");
        };
        assert_eq!((from.as_str(), text.as_str()), ("alice", "one"));
        assert_ne!(seq, 0);
        // Bob's connection dies without confirming (as behind a dead NAT).
        drop(bob);
        let mut bob = Client::login(addr, "bob").await;
        assert_eq!(
            bob.next().await,
            Some(Frame::Deliver {
                from: "alice".into(),
                text: "one".into(),
                seq
            }),
            "sent again at the next login"
        );
        bob.send(&Frame::Received { seq }).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(bob);
        // Confirmed: not again. Sent while bob is offline: at his login.
        alice.message(2, "bob", "two").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut bob = Client::login(addr, "bob").await;
        match bob.next().await {
            Some(Frame::Deliver { text, seq: s2, .. }) => {
                assert_eq!(text, "two");
                assert!(s2 > seq);
            }
            other => panic!("expected the offline message, got {other:?}"),
        }
        assert_eq!(bob.next().await, None, "nothing else pending");
        assert_eq!(b.relayed(), 2);
        // Alice's acknowledgement was lost: she sends message 2 again.
        alice.message(2, "bob", "two").await;
        assert_eq!(bob.next().await, None, "not relayed twice");
        assert_eq!(b.relayed(), 2);
        for t in tasks {
            t.abort();
        }
    }
}
