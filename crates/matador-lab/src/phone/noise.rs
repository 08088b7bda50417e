//! Android-like background traffic: connectivity checks (HTTP 204), NTP,
//! DNS look-ups and a Firebase push connection with heartbeats, owned by the
//! system and Play-services uids (so a per-UID firewall can cut it). Failures
//! are ignored: unanswered SYNs and queries are noise too.

use super::net::NetSide;
use super::proto::{Frame, client_handshake, encode_frame};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SYSTEM_UID: u32 = 1000;
const GMS_UID: u32 = 10050;

async fn connectivity_check(net: &NetSide) {
    let Some(ip) = net
        .resolve("connectivitycheck.gstatic.com", SYSTEM_UID)
        .await
    else {
        return;
    };
    let Ok(mut s) = net
        .tcp(SocketAddr::new(ip, 80), SYSTEM_UID, Duration::from_secs(3))
        .await
    else {
        return;
    };
    let req = "GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nUser-Agent: Dalvik/2.1.0 (Linux; U; Android 13)\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).await.is_ok() {
        let mut buf = [0u8; 512];
        let _ = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    }
}

async fn ntp(net: &NetSide) {
    let Some(ip) = net.resolve("time.android.com", SYSTEM_UID).await else {
        return;
    };
    let Ok(s) = net.udp(SocketAddr::new(ip, 123), SYSTEM_UID).await else {
        return;
    };
    let mut pkt = [0u8; 48];
    pkt[0] = 0x23; // LI 0, version 4, client
    if s.send(&pkt).await.is_ok() {
        let mut buf = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(2), s.recv(&mut buf)).await;
    }
}

async fn push(net: &NetSide) {
    let Some(ip) = net.resolve("mtalk.google.com", GMS_UID).await else {
        return;
    };
    let Ok(mut s) = net
        .tcp(SocketAddr::new(ip, 5228), GMS_UID, Duration::from_secs(5))
        .await
    else {
        return;
    };
    if client_handshake(&mut s, "mtalk.google.com", 5228)
        .await
        .is_err()
    {
        return;
    }
    let mut n = 1u64;
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        n += 1;
        if s.write_all(&encode_frame(&Frame::Ping, n)).await.is_err() {
            return;
        }
    }
}

/// Runs the background traffic forever.
pub async fn run(net: NetSide) {
    let push_net = net.clone();
    tokio::spawn(async move {
        loop {
            push(&push_net).await;
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
    });
    let mut round = 0u64;
    loop {
        connectivity_check(&net).await;
        if round.is_multiple_of(4) {
            ntp(&net).await;
        }
        for host in [
            "play.googleapis.com",
            "android.clients.google.com",
            "www.google.com",
        ] {
            if round.is_multiple_of(3) {
                let _ = net.resolve(host, GMS_UID).await;
            }
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(12_000 + (round * 7919) % 6000)).await;
    }
}
