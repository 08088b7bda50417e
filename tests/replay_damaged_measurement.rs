//! `matador replay` of a measurement folder whose second capture is
//! damaged half-way: the damage is named (file and byte offset), the exit
//! status says a capture failed, and the messaging server is still
//! identified from the intact capture plus the part before the damage.
//! The folder comes from the independent generator `bench/measgen`.

use measgen::model::Conditions;
use measgen::{Dialect, Spec, write_campaign};
use std::path::Path;

/// Overwrites the record header at the first record boundary after half
/// the file with an impossible captured length (pcap: 16-byte record
/// headers after a 24-byte file header), returning its byte offset.
fn damage_pcap(path: &Path) -> u64 {
    let mut b = std::fs::read(path).unwrap();
    let mut off = 24usize;
    while off < b.len() / 2 {
        let incl = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + incl;
    }
    b[off + 8..off + 12].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    std::fs::write(path, b).unwrap();
    off as u64
}

#[test]
fn damaged_capture_is_named_and_servers_still_found() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = Spec {
        cond: Conditions {
            baselines: false,
            ..Conditions::default()
        },
        measurements: 1,
        messages: (14, 16),
        pairs: 1,
        seed: 21,
        dialect: Dialect::Record,
    };
    let c = write_campaign(&tmp.path().join("campaign"), &spec).unwrap();
    let t = &c.truth[0];
    assert_eq!(t.app, "whatsapp");
    // A standalone measurement folder: captures and events, no meta.json.
    let src = c.dir.join("measurements").join(&t.id);
    let dir = tmp.path().join("standalone");
    std::fs::create_dir(&dir).unwrap();
    for f in [
        "events.jsonl",
        "capture-router-pa0.pcap",
        "capture-router-pb0.pcap",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let offset = damage_pcap(&dir.join("capture-router-pb0.pcap"));

    let out = assert_cmd::Command::cargo_bin("matador")
        .unwrap()
        .args(["replay", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a damaged capture fails the replay\n{stdout}"
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let m = lines
        .iter()
        .find(|v| v.get("measurement").is_some())
        .unwrap();
    let warnings: Vec<&str> = m["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    let named = format!("capture-router-pb0.pcap damaged at byte offset {offset}");
    assert!(
        warnings.iter().any(|w| w.contains(&named)),
        "{named} not in {warnings:#?}"
    );
    let damaged = lines
        .iter()
        .find(|v| {
            v["capture"]
                .as_str()
                .is_some_and(|c| c.ends_with("pb0.pcap"))
        })
        .unwrap();
    assert_eq!(damaged["errors"][0]["offset"], offset);
    assert!(
        damaged["packets"].as_u64().unwrap() > 0,
        "packets before the damage kept"
    );
    let messaging: Vec<&serde_json::Value> = m["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["role"] == "messaging")
        .collect();
    let want = t.messaging[0];
    assert_eq!(messaging.len(), 1, "{messaging:#?}");
    assert_eq!(messaging[0]["ip"], want.ip.to_string());
    assert_eq!(messaging[0]["port"], want.port);
}
