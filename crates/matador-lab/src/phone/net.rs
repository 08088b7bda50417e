//! The phone's network side. App and background sockets are created by a
//! dedicated thread that entered the phone's network namespace with
//! `setns(2)` (threads it spawns inherit the namespace), so app traffic
//! originates in the phone's netns while the ADB listener stays on the host's
//! loopback (the USB cable). Without a namespace, sockets are plain (loopback
//! runs). Every outgoing socket passes the phone's iptables model first.

use super::firewall::Packet;
use super::shell::NetHooks;
use super::state::Phone;
use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet as DnsPacket, Question, TYPE};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Job = Box<dyn FnOnce() + Send>;

/// Creates sockets inside the phone's network namespace.
#[derive(Debug, Clone)]
pub struct NetSide {
    factory: Option<std::sync::mpsc::Sender<Job>>,
    dns: Option<SocketAddr>,
    hosts: BTreeMap<String, IpAddr>,
    phone: Arc<Mutex<Phone>>,
    rt: tokio::runtime::Handle,
}

/// Enters a network namespace (a name under /run/netns or a path) on the
/// calling thread only.
pub use matador::net::netns::enter_thread as enter_netns;

impl NetSide {
    /// Starts the socket factory (entering `netns` if given). Must be called
    /// inside a tokio runtime.
    pub fn new(phone: Arc<Mutex<Phone>>) -> io::Result<NetSide> {
        let (netns, dns, hosts) = {
            let p = phone.lock().unwrap_or_else(|e| e.into_inner());
            (p.cfg.netns.clone(), p.cfg.dns, p.cfg.hosts.clone())
        };
        let factory = match netns {
            None => None,
            Some(ns) => {
                let (tx, rx) = std::sync::mpsc::channel::<Job>();
                let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
                std::thread::Builder::new()
                    .name(format!("netns-{ns}"))
                    .spawn(move || {
                        let r = enter_netns(&ns);
                        let ok = r.is_ok();
                        let _ = ready_tx.send(r);
                        if !ok {
                            return;
                        }
                        while let Ok(job) = rx.recv() {
                            // Spawned threads inherit this thread's namespace.
                            let _ = std::thread::Builder::new()
                                .name("netns-job".into())
                                .spawn(job);
                        }
                    })?;
                ready_rx
                    .recv()
                    .map_err(|_| io::Error::other("netns thread died"))??;
                Some(tx)
            }
        };
        Ok(NetSide {
            factory,
            dns,
            hosts,
            phone,
            rt: tokio::runtime::Handle::current(),
        })
    }

    fn check(&self, uid: u32, proto: &'static str, addr: SocketAddr) -> io::Result<()> {
        let p = self.phone.lock().unwrap_or_else(|e| e.into_inner());
        let wifi = p.settings.get("global wifi_on").map(String::as_str) != Some("0");
        if !wifi {
            return Err(io::Error::new(
                io::ErrorKind::NetworkUnreachable,
                "Network is unreachable",
            ));
        }
        if p.firewall.allows(&Packet {
            uid,
            proto,
            dst: addr.ip(),
            dport: addr.port(),
        }) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "Operation not permitted",
            ))
        }
    }

    async fn in_ns<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        match &self.factory {
            None => tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| io::Error::other(e.to_string()))?,
            Some(tx) => {
                let (otx, orx) = tokio::sync::oneshot::channel();
                tx.send(Box::new(move || {
                    let _ = otx.send(f());
                }))
                .map_err(|_| io::Error::other("netns thread gone"))?;
                orx.await
                    .map_err(|_| io::Error::other("netns job dropped"))?
            }
        }
    }

    /// Opens a TCP connection from the phone (as app `uid`).
    pub async fn tcp(
        &self,
        addr: SocketAddr,
        uid: u32,
        timeout: Duration,
    ) -> io::Result<tokio::net::TcpStream> {
        self.check(uid, "tcp", addr)?;
        let s = self
            .in_ns(move || {
                let s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .await?;
        let s = tokio::net::TcpStream::from_std(s)?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// A UDP socket of the phone (as `uid`), connected to `addr`.
    pub async fn udp(&self, addr: SocketAddr, uid: u32) -> io::Result<tokio::net::UdpSocket> {
        self.check(uid, "udp", addr)?;
        let s = self
            .in_ns(move || {
                let bind: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().map_err(io::Error::other)?
                } else {
                    "[::]:0".parse().map_err(io::Error::other)?
                };
                let s = std::net::UdpSocket::bind(bind)?;
                s.connect(addr)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .await?;
        tokio::net::UdpSocket::from_std(s)
    }

    /// Resolves a host name: static hosts, then the configured DNS server.
    pub async fn resolve(&self, host: &str, uid: u32) -> Option<IpAddr> {
        if let Ok(ip) = host.parse() {
            return Some(ip);
        }
        if let Some(ip) = self.hosts.get(host) {
            return Some(*ip);
        }
        let server = self.dns?;
        let id = (Instant::now().elapsed().subsec_nanos() as u16)
            ^ (host.len() as u16).wrapping_mul(7919)
            ^ uid as u16;
        let mut q = DnsPacket::new_query(id);
        q.set_flags(simple_dns::PacketFlag::RECURSION_DESIRED);
        q.questions.push(Question::new(
            Name::new(host).ok()?,
            TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
        let bytes = q.build_bytes_vec().ok()?;
        for _ in 0..2 {
            let Ok(sock) = self.udp(server, uid).await else {
                return None;
            };
            if sock.send(&bytes).await.is_err() {
                return None;
            }
            let mut buf = vec![0u8; 1500];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await
            {
                let Ok(p) = DnsPacket::parse(&buf[..n]) else {
                    continue;
                };
                if p.id() != id {
                    continue;
                }
                return p.answers.iter().find_map(|rr| match &rr.rdata {
                    RData::A(a) => Some(IpAddr::from(std::net::Ipv4Addr::from(a.address))),
                    _ => None,
                });
            }
        }
        None
    }
}

/// Shell hooks backed by the phone's network side (for `ping`).
#[derive(Debug, Clone)]
pub struct ShellNet(pub NetSide);

impl NetHooks for ShellNet {
    fn resolve(&self, host: &str) -> Option<IpAddr> {
        let ns = self.0.clone();
        let host = host.to_string();
        self.0
            .rt
            .block_on(async move { ns.resolve(&host, 2000).await })
    }

    fn ip(&self, args: &[String]) -> Option<String> {
        self.0.factory.as_ref()?;
        let ns = self.0.clone();
        let args = args.to_vec();
        // A child forked from the namespace thread lives in that namespace.
        let out = self
            .0
            .rt
            .block_on(async move {
                ns.in_ns(move || {
                    std::process::Command::new("ip")
                        .args(&args)
                        .stdin(std::process::Stdio::null())
                        .output()
                })
                .await
            })
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn probe(&self, ip: IpAddr) -> Option<f64> {
        let ns = self.0.clone();
        self.0.rt.block_on(async move {
            let t = Instant::now();
            // A SYN to the discard port: refused (RST) or accepted, either way one RTT.
            match ns
                .tcp(SocketAddr::new(ip, 9), 2000, Duration::from_secs(2))
                .await
            {
                Ok(_) => Some(t.elapsed().as_secs_f64() * 1000.0),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    Some(t.elapsed().as_secs_f64() * 1000.0)
                }
                Err(_) => None,
            }
        })
    }
}
