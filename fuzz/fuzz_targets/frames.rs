//! Frames behind a valid pcap header, so the fuzzer spends its time in the
//! link/IP/TCP/UDP decoder and the DNS, TLS, QUIC, HTTP, WeChat and
//! attribution parsers rather than in file headers.
//!
//! Input: byte 0 picks the link type; then frames, each a 2-byte big-endian
//! length and that many bytes (the last one takes what is left).
#![no_main]

use libfuzzer_sys::fuzz_target;
use matador::analysis::replay::{ReplayOptions, analyze_reader};

/// Ethernet, raw IP, Linux SLL, SLL2, BSD NULL, raw IPv4, raw IPv6, loopback.
const LINKS: [u32; 8] = [1, 101, 113, 276, 0, 228, 229, 108];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(sel) % LINKS.len()];
    let mut file = Vec::with_capacity(data.len() + 64);
    // Magic, version 2.4 (two LE u16), zone, sigfigs, snap length, link type.
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, link] {
        file.extend_from_slice(&v.to_le_bytes());
    }
    let mut t = 1_700_000_000u32;
    while !rest.is_empty() {
        let (frame, next) = if rest.len() >= 2 {
            let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
            (&rest[2..2 + n], &rest[2 + n..])
        } else {
            (rest, &rest[rest.len()..])
        };
        t = t.wrapping_add(1);
        let len = frame.len() as u32;
        for v in [t, 0, len, len] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(frame);
        rest = next;
    }
    let report = analyze_reader("fuzz.pcap", &file[..], &ReplayOptions::default());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let _ = serde_json::to_string(&report);
});
