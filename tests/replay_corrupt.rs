//! Truncated and corrupt captures: the error names the byte offset and the
//! frame, every frame before it is kept, nothing panics.
//!
//! Record boundaries are computed here independently of the reader (a tiny
//! walker over the pcap / pcapng framing), then real captures are cut or
//! damaged at many places in a temporary directory.

use matador::analysis::replay::{ReplayOptions, analyze_file};
use std::path::{Path, PathBuf};

fn real(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/captures/real")
        .join(name)
}

/// A record of the file: (start offset, end offset, frame number it uses or
/// would use, is it a packet).
#[derive(Debug, Clone, Copy)]
struct Rec {
    start: usize,
    end: usize,
    frame: u64,
    packet: bool,
}

fn walk_pcap(b: &[u8]) -> Vec<Rec> {
    let le = b[0] == 0xd4 || b[0] == 0x4d;
    let rd = |o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut out = vec![Rec {
        start: 0,
        end: 24,
        frame: 1,
        packet: false,
    }];
    let (mut o, mut frame) = (24, 1);
    while o < b.len() {
        let end = o + 16 + rd(o + 8) as usize;
        out.push(Rec {
            start: o,
            end,
            frame,
            packet: true,
        });
        frame += 1;
        o = end;
    }
    out
}

fn walk_pcapng(b: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let (mut o, mut frame, mut le) = (0, 1u64, true);
    while o < b.len() {
        let ty_le = u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        if ty_le == 0x0a0d_0d0a {
            le = b[o + 8] == 0x4d;
        }
        let rd = |x: usize| {
            let a: [u8; 4] = b[x..x + 4].try_into().unwrap();
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        let ty = rd(o);
        let end = o + rd(o + 4) as usize;
        let packet = matches!(ty, 2 | 3 | 6);
        let numbered = packet || matches!(ty, 0x0bad | 0x4000_0bad | 9);
        out.push(Rec {
            start: o,
            end,
            frame,
            packet,
        });
        if numbered {
            frame += 1;
        }
        o = end;
    }
    out
}

fn check_cuts(name: &str, recs: &[Rec], bytes: &[u8], step: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let mut cuts: Vec<usize> = (5..bytes.len()).step_by(step).collect();
    // Exactly on boundaries, and one byte either side of a few.
    for r in recs.iter().skip(1).take(5) {
        cuts.extend([r.start, r.start + 1, r.start + 7, r.end - 1]);
    }
    for cut in cuts {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let r = analyze_file(&path, &ReplayOptions::default());
        let whole: Vec<&Rec> = recs.iter().filter(|r| r.end <= cut).collect();
        let kept = whole.iter().filter(|r| r.packet).count() as u64;
        assert_eq!(r.packets, kept, "{name} cut at {cut}");
        if recs.iter().any(|r| r.end == cut) {
            assert!(
                r.errors.is_empty(),
                "{name} cut at boundary {cut}: {:?}",
                r.errors
            );
            continue;
        }
        let broken = recs.iter().find(|r| r.start < cut && cut < r.end).unwrap();
        assert_eq!(r.errors.len(), 1, "{name} cut at {cut}");
        let e = &r.errors[0];
        assert_eq!(e.file, path.display().to_string());
        assert_eq!(
            e.offset,
            Some(broken.start as u64),
            "{name} cut at {cut}: {e:?}"
        );
        assert_eq!(e.frame, Some(broken.frame), "{name} cut at {cut}: {e:?}");
        assert!(e.message.contains("truncated"), "{}", e.message);
    }
}

#[test]
fn truncated_pcap_keeps_earlier_frames() {
    let bytes = std::fs::read(real("ndpi-whatsapp_login_chat.pcap")).unwrap();
    let recs = walk_pcap(&bytes);
    assert_eq!(recs.iter().filter(|r| r.packet).count(), 93);
    check_cuts("cut.pcap", &recs, &bytes, 997);
}

#[test]
fn truncated_pcap_named_pcapng_keeps_earlier_frames() {
    let bytes = std::fs::read(real("citizenlab-capture-logged-in-all-keys.pcapng")).unwrap();
    let recs = walk_pcap(&bytes);
    check_cuts("cut.pcapng", &recs, &bytes, 3001);
}

#[test]
fn truncated_pcapng_keeps_earlier_frames() {
    for name in ["hadrielk-test202.pcapng", "hadrielk-test006.pcapng"] {
        let bytes = std::fs::read(real(name)).unwrap();
        let recs = walk_pcapng(&bytes);
        assert_eq!(recs.last().unwrap().end, bytes.len());
        check_cuts(name, &recs, &bytes, 13);
    }
}

#[test]
fn corrupt_length_fields_name_offset_and_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pcap");
    let bytes = std::fs::read(real("ndpi-threema.pcap")).unwrap();
    let recs = walk_pcap(&bytes);
    for k in [1usize, 10, 50, 83] {
        let rec = recs[k];
        let mut b = bytes.clone();
        b[rec.start + 8..rec.start + 12].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        let r = analyze_file(&path, &ReplayOptions::default());
        assert_eq!(r.packets, k as u64 - 1);
        assert_eq!(r.errors[0].offset, Some(rec.start as u64));
        assert_eq!(r.errors[0].frame, Some(k as u64));
        assert!(
            r.errors[0].message.contains("corrupt"),
            "{}",
            r.errors[0].message
        );
    }

    let path = dir.path().join("bad.pcapng");
    let bytes = std::fs::read(real("hadrielk-test006.pcapng")).unwrap();
    let recs = walk_pcapng(&bytes);
    let (i, rec) = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.packet)
        .nth(2)
        .unwrap();
    for bad_len in [7u32, 0x7fff_fff0, (rec.end - rec.start + 4) as u32] {
        let mut b = bytes.clone();
        b[rec.start + 4..rec.start + 8].copy_from_slice(&bad_len.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        let r = analyze_file(&path, &ReplayOptions::default());
        assert_eq!(r.packets, 2, "len {bad_len}");
        assert_eq!(r.errors[0].offset, Some(rec.start as u64), "record {i}");
        assert_eq!(r.errors[0].frame, Some(3));
    }
}

#[test]
fn not_a_capture_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.pcap");
    std::fs::write(&path, "these are notes, not packets").unwrap();
    let r = analyze_file(&path, &ReplayOptions::default());
    assert_eq!(r.packets, 0);
    assert!(r.errors[0].message.contains("not a pcap"), "{:?}", r.errors);
    let r = analyze_file(&dir.path().join("missing.pcap"), &ReplayOptions::default());
    assert!(
        r.errors[0].message.contains("cannot open"),
        "{:?}",
        r.errors
    );
}
