//! Live capture (libpcap) without SSH: UDP datagrams this test sends to
//! 127.0.0.1 on a port of its own, captured on `lo` with a BPF filter for
//! that port (other traffic on `lo` is filtered out). Needs root (or
//! CAP_NET_RAW): without it the test FAILS with libpcap's message.

use matador::capture::CaptureReader;
use matador::capture::live::{LiveCapture, LiveSpec, LiveSummary};
use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

/// Stops `cap` on another thread. A stop that has not ended after a minute
/// is a hang: a hang detector, not a speed target (the tests print how long
/// a stop took; a loaded machine only makes it slower).
fn stop(cap: LiveCapture) -> LiveSummary {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(cap.stop());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the capture does not stop")
        .unwrap()
}

fn count(path: &Path) -> (u64, Vec<u16>) {
    let mut r = CaptureReader::open(path).unwrap();
    let mut n = 0;
    let mut lens = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        n += 1;
        lens.push(f.orig_len as u16);
    }
    (n, lens)
}

/// A UDP sink bound to a free loopback port (so the kernel does not answer
/// with ICMP port unreachable) and a sender.
fn sockets() -> (UdpSocket, UdpSocket, u16) {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(("127.0.0.1", port)).unwrap();
    (sink, tx, port)
}

#[test]
fn rotation_by_time_and_paced_rate_without_drops() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, tx, port) = sockets();
    let mut spec = LiveSpec::new("lo", "lo-time");
    spec.filter = Some(format!("udp and dst port {port}"));
    spec.rotate_secs = Some(1);
    let cap = LiveCapture::start(&spec, dir.path()).expect("libpcap on lo (needs root)");
    // 20 000 datagrams/s for 2.5 s, paced in 1 ms slices.
    let t0 = Instant::now();
    let mut sent = 0u64;
    let payload = [0x5au8; 200];
    while t0.elapsed() < Duration::from_millis(2500) {
        let due = (t0.elapsed().as_secs_f64() * 20_000.0) as u64;
        while sent < due {
            tx.send(&payload).unwrap();
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let s = cap.stop().unwrap();
    eprintln!("paced: sent {sent}, stats {:?}", s.stats);
    assert_eq!(s.stats.dropped, 0, "{:?}", s.stats);
    assert_eq!(s.stats.written, sent);
    assert!(s.files.len() >= 3, "1 s rotation over 2.5 s: {:?}", s.files);
    assert_eq!(s.stats.files, s.files.len() as u64);
    let mut total = 0;
    for (i, f) in s.files.iter().enumerate() {
        assert_eq!(
            f.file_name().unwrap().to_str().unwrap(),
            format!("lo-time-{:04}.pcap", i + 1)
        );
        let (n, lens) = count(f);
        assert!(
            lens.iter().all(|&l| l == 14 + 20 + 8 + 200),
            "ethernet/IPv4/UDP/200"
        );
        total += n;
    }
    assert_eq!(total, sent);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn burst_rate_and_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, tx, port) = sockets();
    let mut spec = LiveSpec::new("lo", "lo-burst");
    spec.filter = Some(format!("udp and dst port {port}"));
    let cap = LiveCapture::start(&spec, dir.path()).unwrap();
    // As fast as one sender thread can: 100 000 datagrams of 1000 bytes.
    let payload = [0xa5u8; 1000];
    let t0 = Instant::now();
    for _ in 0..100_000 {
        tx.send(&payload).unwrap();
    }
    let dt = t0.elapsed();
    let running = cap.stats();
    let t_stop = Instant::now();
    let s = stop(cap);
    let stop_time = t_stop.elapsed();
    eprintln!(
        "burst: 100000 in {dt:?} = {:.0} pkt/s ({:.0} MB/s); written {} dropped {}; stop took {stop_time:?}; stats while running {:?}",
        100_000.0 / dt.as_secs_f64(),
        100_000.0 * 1042.0 / dt.as_secs_f64() / 1e6,
        s.stats.written,
        s.stats.dropped,
        running
    );
    // Every datagram is either written or counted as dropped: nothing lost
    // silently. The kernel's drop counter on `lo` may also count the
    // outgoing copies libpcap discards, so it can exceed the shortfall.
    assert!(s.stats.written <= 100_000, "{:?}", s.stats);
    assert!(
        s.stats.written + s.stats.dropped >= 100_000,
        "lost without a drop count: {:?}",
        s.stats
    );
    let (n, _) = count(&s.files[0]);
    assert_eq!(n, s.stats.written);
    if s.stats.dropped > 0 {
        assert!(s.warnings[0].contains("dropped"), "{:?}", s.warnings);
    }
}

#[test]
fn idle_capture_is_a_valid_empty_file_and_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, _tx, port) = sockets();
    let mut spec = LiveSpec::new("lo", "idle");
    spec.filter = Some(format!("udp and dst port {port}"));
    let cap = LiveCapture::start(&spec, dir.path()).unwrap();
    assert!(cap.is_running());
    // The scenario: the capture idles a while (no packet ever comes).
    std::thread::sleep(Duration::from_millis(200));
    // It stops without waiting for a packet (else `stop` detects a hang).
    let s = stop(cap);
    assert_eq!(s.stats.written, 0);
    assert_eq!(std::fs::metadata(&s.files[0]).unwrap().len(), 24);
    assert_eq!(count(&s.files[0]).0, 0);
}
