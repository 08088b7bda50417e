//! Android background-service hosts for the lab: an HTTP server answering
//! connectivity checks with 204, an NTP server, and a push endpoint (TLS-like
//! handshake, then it swallows heartbeats). Run as
//! `matador lab noise --listen ADDR` inside a data-centre namespace.

use crate::phone::proto::{read_record, server_handshake};
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Ports served.
pub const HTTP_PORT: u16 = 80;
/// NTP port.
pub const NTP_PORT: u16 = 123;
/// Push (FCM-like) port.
pub const PUSH_PORT: u16 = 5228;

async fn http(mut s: TcpStream) {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16384 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let _ = s
        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await;
}

/// An NTP server reply (mode 4, stratum 2) to a client packet, with the
/// current time; `None` if the packet is too short.
pub fn ntp_reply(req: &[u8], now: std::time::SystemTime) -> Option<[u8; 48]> {
    if req.len() < 48 {
        return None;
    }
    let d = now.duration_since(std::time::UNIX_EPOCH).ok()?;
    let secs = (d.as_secs() + 2_208_988_800) as u32;
    let frac = ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    let mut r = [0u8; 48];
    r[0] = 0x24; // LI 0, version 4, server
    r[1] = 2;
    r[2] = req[2];
    r[3] = 0xec;
    r[12..16].copy_from_slice(b"LAB\0");
    r[24..32].copy_from_slice(&req[40..48]); // originate = client's transmit
    for off in [16, 32, 40] {
        r[off..off + 4].copy_from_slice(&secs.to_be_bytes());
        r[off + 4..off + 8].copy_from_slice(&frac.to_be_bytes());
    }
    Some(r)
}

async fn push(mut s: TcpStream, seed: u64) {
    if read_record(&mut s).await.is_err() || server_handshake(&mut s, seed).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

/// Serves on `ip` until the task is dropped; returns once bound.
pub async fn serve(ip: IpAddr) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let h = TcpListener::bind(SocketAddr::new(ip, HTTP_PORT)).await?;
    let p = TcpListener::bind(SocketAddr::new(ip, PUSH_PORT)).await?;
    let u = UdpSocket::bind(SocketAddr::new(ip, NTP_PORT)).await?;
    let mut tasks = vec![tokio::spawn(async move {
        while let Ok((s, _)) = h.accept().await {
            tokio::spawn(http(s));
        }
    })];
    tasks.push(tokio::spawn(async move {
        let mut seed = 1u64;
        while let Ok((s, _)) = p.accept().await {
            seed += 1;
            tokio::spawn(push(s, seed));
        }
    }));
    tasks.push(tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = u.recv_from(&mut buf).await {
            if let Some(r) = ntp_reply(&buf[..n], std::time::SystemTime::now()) {
                let _ = u.send_to(&r, from).await;
            }
        }
    }));
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_reply_echoes_originate() {
        let mut req = [0u8; 48];
        req[0] = 0x23;
        req[40..48].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let r = ntp_reply(&req, std::time::SystemTime::now()).unwrap();
        assert_eq!(r[0] & 7, 4);
        assert_eq!(&r[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(ntp_reply(&req[..10], std::time::SystemTime::now()).is_none());
    }
}
