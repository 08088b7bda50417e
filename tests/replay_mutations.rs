//! Deterministic mutation test (runs in CI; `fuzz/` has the cargo-fuzz
//! targets for longer runs): real captures damaged in seeded, reproducible
//! ways go through the whole replay engine — reader, decoder, flows, DNS,
//! TLS/QUIC/HTTP/WeChat extractors, attribution — which must never panic.
//!
//! Two kinds of damage:
//! - anywhere in the file (headers, record lengths, block options): errors
//!   must point inside the file;
//! - only inside frame bytes of classic pcap files, so the container stays
//!   valid: every frame must still be counted and no error reported, however
//!   broken the packets are.

use matador::analysis::replay::{ReplayOptions, analyze_reader, collect_inputs};
use std::path::{Path, PathBuf};

/// xorshift64*: small, seeded, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x40];

/// Damages `buf[lo..hi]` once.
fn mutate(rng: &mut Rng, buf: &mut [u8], lo: usize, hi: usize) {
    if hi <= lo {
        return;
    }
    let i = lo + rng.below(hi - lo);
    match rng.below(5) {
        0 => buf[i] ^= 1 << rng.below(8),
        1 => buf[i] = INTERESTING[rng.below(INTERESTING.len())],
        2 => buf[i] = rng.next() as u8,
        3 if i + 1 < hi => {
            // A 16-bit length-like field set to an edge value.
            let v: u16 = [0, 1, 0x7fff, 0xffff, 0x0100][rng.below(5)];
            buf[i..i + 2].copy_from_slice(&v.to_be_bytes());
        }
        _ => {
            // Copy a run of bytes from elsewhere in the range (shifted headers).
            let n = rng.below(16).min(hi - i);
            let src = lo + rng.below(hi - lo - n + 1);
            buf.copy_within(src..src + n, i);
        }
    }
}

fn captures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/real");
    let files: Vec<PathBuf> = collect_inputs(&[dir]);
    assert_eq!(files.len(), 13, "the real captures are needed");
    files
        .into_iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&f).unwrap())
        })
        .collect()
}

/// Frame byte ranges of a classic little/big-endian pcap (no ns/modified variants needed here).
fn pcap_frames(b: &[u8]) -> Option<Vec<(usize, usize)>> {
    let le = match b.get(..4)? {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return None,
    };
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let a: [u8; 4] = b[o + 8..o + 12].try_into().ok()?;
        let n = if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        } as usize;
        out.push((o + 16, o + 16 + n));
        o += 16 + n;
    }
    Some(out)
}

#[test]
fn damaged_files_never_panic_and_errors_point_inside() {
    let opts = ReplayOptions::default();
    let mut rng = Rng(0x6d61_7461_646f_7221);
    let mut with_errors = 0;
    for (name, orig) in captures() {
        for round in 0..24 {
            let mut buf = orig.clone();
            let hits = 1 + rng.below(40);
            for _ in 0..hits {
                // Bias towards the start: headers, IDBs and first records.
                let hi = if rng.below(2) == 0 {
                    buf.len().min(512)
                } else {
                    buf.len()
                };
                mutate(&mut rng, &mut buf, 0, hi);
            }
            if rng.below(4) == 0 {
                let keep = rng.below(buf.len());
                buf.truncate(keep);
            }
            let label = format!("{name} round {round}");
            let r = analyze_reader(&label, &buf[..], &opts);
            for e in &r.errors {
                assert!(e.file == label, "{e:?}");
                if let Some(off) = e.offset {
                    assert!(off <= buf.len() as u64, "{label}: {e:?}");
                }
            }
            with_errors += usize::from(!r.errors.is_empty());
            serde_json::to_string(&r).unwrap();
        }
    }
    // The damage is real: many files must fail to read completely.
    assert!(
        with_errors > 50,
        "only {with_errors} damaged files reported errors"
    );
}

#[test]
fn damaged_packets_inside_a_valid_container_are_all_counted() {
    let opts = ReplayOptions::default();
    let mut rng = Rng(0x7061_636b_6574_7321);
    let mut files = 0;
    for (name, orig) in captures() {
        let Some(frames) = pcap_frames(&orig) else {
            continue; // pcapng: covered by the test above
        };
        files += 1;
        let clean = analyze_reader(&name, &orig[..], &opts);
        assert!(clean.errors.is_empty());
        for round in 0..12 {
            let mut buf = orig.clone();
            for &(lo, hi) in &frames {
                // Several hits per frame, dense in the first 80 bytes
                // (link, IP and transport headers) and anywhere in payloads.
                for _ in 0..rng.below(4) {
                    let h = if rng.below(2) == 0 {
                        hi.min(lo + 80)
                    } else {
                        hi
                    };
                    mutate(&mut rng, &mut buf, lo, h);
                }
            }
            let r = analyze_reader(&name, &buf[..], &opts);
            assert!(r.errors.is_empty(), "{name} round {round}: {:?}", r.errors);
            assert_eq!(r.packets, clean.packets, "{name} round {round}");
            assert_eq!(r.bytes, clean.bytes, "{name} round {round}");
            serde_json::to_string(&r).unwrap();
        }
    }
    assert_eq!(files, 11, "classic pcap files among the real captures");
}

#[test]
fn non_ascii_names_against_domain_patterns() {
    // Found by the test above: a damaged SNI "www.al\u{fffd}azeera.net"
    // made the suffix comparison split a str inside a character.
    let p: matador::scenario::apps::DomainPattern = "azeera.net".parse().unwrap();
    assert!(!p.matches("www.al\u{fffd}azeera.net"));
    assert!(p.matches("www.\u{fffd}.azeera.net"));
    let p: matador::scenario::apps::DomainPattern = "a.net".parse().unwrap();
    assert!(!p.matches("\u{fffd}\u{fffd}.net"));
}
