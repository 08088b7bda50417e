//! The simulated apps' network side: one task per installed app keeps a
//! TLS-like connection to the app's backend (resolved through the phone's
//! resolver; WeChat first asks its HTTP DNS), sends queued messages, and posts
//! incoming ones as notifications. Reconnects with backoff.

use super::net::NetSide;
use super::proto::{Frame, client_handshake, decode_frame, encode_frame, read_record};
use super::state::{NetRequest, Phone};
use flate2::read::DeflateDecoder;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Starts the app tasks; returns their handles.
pub fn start(phone: Arc<Mutex<Phone>>, net: NetSide) -> Vec<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<NetRequest>();
    let apps: Vec<(&'static str, String, String, u32)> = {
        let mut p = phone.lock().unwrap_or_else(|e| e.into_inner());
        p.net_tx = Some(tx);
        p.apps
            .iter()
            .map(|a| (a.def.id, a.account.clone(), a.server.clone(), a.uid))
            .collect()
    };
    let mut senders: HashMap<&'static str, mpsc::UnboundedSender<(u64, String, String)>> =
        HashMap::new();
    let mut tasks = Vec::new();
    for (id, account, server, uid) in apps {
        let (atx, arx) = mpsc::unbounded_channel();
        senders.insert(id, atx);
        tasks.push(tokio::spawn(app_task(
            id,
            account,
            server,
            uid,
            phone.clone(),
            net.clone(),
            arx,
        )));
    }
    tasks.push(tokio::spawn(async move {
        while let Some(NetRequest::Send { app, to, id, text }) = rx.recv().await {
            if let Some(s) = senders.get(app) {
                let _ = s.send((id, to, text));
            }
        }
    }));
    tasks
}

fn set_online(phone: &Arc<Mutex<Phone>>, app: &str, on: bool) {
    let mut p = phone.lock().unwrap_or_else(|e| e.into_inner());
    for a in p.apps.iter_mut().filter(|a| a.def.id == app) {
        a.online = on;
    }
}

/// Resolves WeChat's servers through its HTTP DNS (`newgetdns`).
pub async fn wechat_newgetdns(net: &NetSide, uid: u32, want: &str) -> Option<IpAddr> {
    let ip = net.resolve("dns.weixin.qq.com", uid).await?;
    let mut s = net
        .tcp(SocketAddr::new(ip, 80), uid, Duration::from_secs(5))
        .await
        .ok()?;
    let req = "GET /cgi-bin/micromsg-bin/newgetdns?uin=0&clientversion=671090490&scene=0&net=1&md5=d41d8cd98f00b204e9800998ecf8427e&devicetype=android-33&lan=en_US&sigver=2 HTTP/1.1\r\nHost: dns.weixin.qq.com\r\nAccept: */*\r\nUser-Agent: MicroMessenger Client\r\nConnection: close\r\n\r\n";
    s.write_all(req.as_bytes()).await.ok()?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut resp))
        .await
        .ok()?
        .ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let mut xml = String::new();
    DeflateDecoder::new(&resp[split..])
        .read_to_string(&mut xml)
        .ok()?;
    let re = regex::Regex::new(r#"<domain name="([^"]+)"[^>]*>\s*<ip>([^<]+)</ip>"#).ok()?;
    re.captures_iter(&xml)
        .find(|c| &c[1] == want)
        .and_then(|c| c[2].trim().parse().ok())
}

async fn app_task(
    id: &'static str,
    account: String,
    server: String,
    uid: u32,
    phone: Arc<Mutex<Phone>>,
    net: NetSide,
    mut rx: mpsc::UnboundedReceiver<(u64, String, String)>,
) {
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse::<u16>().unwrap_or(443)),
        None => (server.clone(), 443),
    };
    let mut pending: VecDeque<(u64, String, String)> = VecDeque::new();
    let mut seen = Seen::default();
    let mut backoff = Duration::from_millis(300);
    let mut seed = u64::from(uid) << 20;
    loop {
        // Resolve (WeChat: HTTP DNS first, plain DNS as fallback).
        let ip = if id == "wechat" {
            match wechat_newgetdns(&net, uid, &host).await {
                Some(ip) => Some(ip),
                None => net.resolve(&host, uid).await,
            }
        } else {
            net.resolve(&host, uid).await
        };
        let conn = match ip {
            Some(ip) => net
                .tcp(SocketAddr::new(ip, port), uid, Duration::from_secs(5))
                .await
                .ok(),
            None => None,
        };
        if let Some(mut sock) = conn {
            seed = seed.wrapping_add(1);
            if client_handshake(&mut sock, &host, seed).await.is_ok() {
                backoff = Duration::from_millis(300);
                set_online(&phone, id, true);
                let mut unacked = Vec::new();
                let _reason = session(
                    id,
                    &account,
                    sock,
                    &phone,
                    &mut rx,
                    &mut pending,
                    &mut unacked,
                    &mut seen,
                    seed,
                )
                .await;
                for m in unacked.into_iter().rev() {
                    pending.push_front(m);
                }
                set_online(&phone, id, false);
            }
        }
        // Offline: keep accepting messages to send later.
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                m = rx.recv() => match m {
                    Some(m) => pending.push_back(m),
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Delivery numbers already shown, across reconnects: the backend sends an
/// unconfirmed delivery again at the next login, shown once (bounded).
#[derive(Debug, Default)]
struct Seen {
    order: VecDeque<u64>,
    set: std::collections::HashSet<u64>,
}

impl Seen {
    /// True the first time `seq` is seen.
    fn first(&mut self, seq: u64) -> bool {
        if !self.set.insert(seq) {
            return false;
        }
        self.order.push_back(seq);
        if self.order.len() > 4096
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// A message to send: (message id, recipient, text).
type Outgoing = (u64, String, String);

/// One connection's life. Messages written go to `unacked` until the
/// backend acknowledges them; the caller puts what is left back in front of
/// `pending` (the write may have gone into a connection that was already
/// dead, e.g. reset by a new path), to be sent again on the next connection
/// — the backend ignores a repeated id.
#[allow(clippy::too_many_arguments)]
async fn session(
    id: &'static str,
    account: &str,
    sock: tokio::net::TcpStream,
    phone: &Arc<Mutex<Phone>>,
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    pending: &mut VecDeque<Outgoing>,
    unacked: &mut Vec<Outgoing>,
    seen: &mut Seen,
    seed: u64,
) -> &'static str {
    // iptables' OUTPUT chain sees every packet, not only the first: a rule
    // added while the connection is up makes the next write fail with EPERM,
    // as locally generated packets dropped by netfilter do.
    let peer = sock.peer_addr().ok();
    let allowed = || {
        let p = phone.lock().unwrap_or_else(|e| e.into_inner());
        let Some(peer) = peer else { return true };
        let Some(uid) = p.apps.iter().find(|a| a.def.id == id).map(|a| a.uid) else {
            return true;
        };
        p.firewall.allows(&super::firewall::Packet {
            uid,
            proto: "tcp",
            dst: peer.ip(),
            dport: peer.port(),
        })
    };
    let (mut rd, mut wr) = sock.into_split();
    let mut nonce = seed << 8;
    let mut send = |f: &Frame| {
        nonce = nonce.wrapping_add(1);
        encode_frame(f, nonce)
    };
    if wr
        .write_all(&send(&Frame::Hello {
            account: account.to_string(),
        }))
        .await
        .is_err()
    {
        return "hello failed";
    }
    while let Some((mid, to, text)) = pending.pop_front() {
        if wr
            .write_all(&send(&Frame::Msg {
                id: mid,
                to: to.clone(),
                text: text.clone(),
            }))
            .await
            .is_err()
        {
            pending.push_front((mid, to, text));
            return "write failed";
        }
        unacked.push((mid, to, text));
    }
    let (ftx, mut frx) = mpsc::unbounded_channel::<Frame>();
    let reader = tokio::spawn(async move {
        while let Ok((kind, body)) = read_record(&mut rd).await {
            if kind == 0x17
                && let Some(f) = decode_frame(&body)
                && ftx.send(f).is_err()
            {
                break;
            }
        }
    });
    let mut keepalive = tokio::time::interval(Duration::from_secs(25));
    keepalive.tick().await;
    let reason = loop {
        tokio::select! {
            m = rx.recv() => {
                let Some((mid, to, text)) = m else { break "app stopped" };
                if !allowed() {
                    pending.push_back((mid, to, text));
                    break "write failed: Operation not permitted";
                }
                if wr.write_all(&send(&Frame::Msg { id: mid, to: to.clone(), text: text.clone() })).await.is_err() {
                    pending.push_back((mid, to, text));
                    break "write failed";
                }
                unacked.push((mid, to, text));
            }
            f = frx.recv() => match f {
                None => break "connection closed",
                Some(Frame::Ack { id: mid }) => {
                    unacked.retain(|x| x.0 != mid);
                    phone.lock().unwrap_or_else(|e| e.into_inner()).mark(id, mid, "sent");
                }
                Some(Frame::Deliver { from, text, seq }) => {
                    // seq 0: a backend without delivery numbers.
                    if seq == 0 || seen.first(seq) {
                        phone.lock().unwrap_or_else(|e| e.into_inner()).deliver(id, &from, &text);
                    }
                    if seq != 0 {
                        if !allowed() {
                            break "write failed: Operation not permitted";
                        }
                        if wr.write_all(&send(&Frame::Received { seq })).await.is_err() {
                            break "write failed";
                        }
                    }
                }
                Some(_) => {}
            },
            _ = keepalive.tick() => {
                if !allowed() {
                    break "keepalive failed: Operation not permitted";
                }
                if wr.write_all(&send(&Frame::Ping)).await.is_err() {
                    break "keepalive failed";
                }
            }
        }
    };
    reader.abort();
    reason
}
