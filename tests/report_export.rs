//! `matador export --anonymize` on a copy of the fixture campaign with a
//! pcap, a pcapng and an events.jsonl holding identifiers.

mod report_common;

use assert_cmd::Command;
use matador::geo::groups::GroupSet;
use matador::report::{self, Campaign, Options};
use report_common::*;
use std::net::IpAddr;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

fn v4_tcp(src: [u8; 4], dst: [u8; 4], payload: usize) -> Vec<u8> {
    let mut p = vec![0u8; 14];
    p[12] = 0x08;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip.extend(src);
    ip.extend(dst);
    p.extend(ip);
    let mut tcp = vec![0u8; 20];
    tcp[12] = 5 << 4;
    p.extend(tcp);
    p.extend(std::iter::repeat_n(0xab, payload));
    p
}

fn v6_udp(src: IpAddr, dst: IpAddr, payload: usize) -> Vec<u8> {
    let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
        panic!()
    };
    let mut p = vec![0u8; 14];
    p[12] = 0x86;
    p[13] = 0xdd;
    let mut ip = vec![0x60, 0, 0, 0, 0, 8 + payload as u8, 17, 64];
    ip.extend(s.octets());
    ip.extend(d.octets());
    p.extend(ip);
    p.extend([0u8; 8]);
    p.extend(std::iter::repeat_n(0xcd, payload));
    p
}

fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    f.extend([0u8; 8]);
    f.extend(65535u32.to_le_bytes());
    f.extend(1u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        f.extend((1_700_000_000u32 + i as u32).to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend((p.len() as u32).to_le_bytes());
        f.extend((p.len() as u32).to_le_bytes());
        f.extend(p);
    }
    f
}

/// (incl_len, orig_len, bytes) of each record.
fn records(f: &[u8]) -> Vec<(usize, usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= f.len() {
        let incl = u32::from_le_bytes(f[off + 8..off + 12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(f[off + 12..off + 16].try_into().unwrap()) as usize;
        out.push((incl, orig, f[off + 16..off + 16 + incl].to_vec()));
        off += 16 + incl;
    }
    out
}

fn common_prefix(a: IpAddr, b: IpAddr) -> u32 {
    match (a, b) {
        (IpAddr::V4(x), IpAddr::V4(y)) => (u32::from(x) ^ u32::from(y)).leading_zeros(),
        (IpAddr::V6(x), IpAddr::V6(y)) => (u128::from(x) ^ u128::from(y)).leading_zeros(),
        _ => 0,
    }
}

#[test]
fn anonymized_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let (db_path, db) = lab_db(tmp.path());
    let src = tmp.path().join("small");
    copy_dir(&fixtures().join("small"), &src);
    // A lab router with an IPv6 address, to be mapped as well.
    let lab_path = src.join("lab.json");
    let mut lab: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lab_path).unwrap()).unwrap();
    lab["nodes"].as_array_mut().unwrap().push(serde_json::json!(
        {"name": "router", "kind": "router", "country": "DE", "addr": "198.18.30.1", "addrs": ["fd00:30::1"]}));
    std::fs::write(&lab_path, serde_json::to_string_pretty(&lab).unwrap()).unwrap();
    let m1 = src.join("measurements/m0001");
    let phone: IpAddr = "198.18.30.2".parse().unwrap();
    let router6: IpAddr = "fd00:30::1".parse().unwrap();
    std::fs::write(
        m1.join("capture-router-phone-a.pcap"),
        pcap(&[
            v4_tcp([198, 18, 30, 2], [198, 18, 20, 10], 300),
            v4_tcp([198, 18, 20, 10], [198, 18, 30, 2], 0),
            v6_udp(router6, "fd00:6::1".parse().unwrap(), 40),
        ]),
    )
    .unwrap();
    std::fs::write(
        m1.join("capture-node-de-1.pcapng"),
        [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0],
    )
    .unwrap();
    std::fs::write(
        m1.join("events.jsonl"),
        "{\"ts\":\"1700000001.5\",\"device\":\"sim-phone-a\",\"app\":\"whatsapp\",\"kind\":\"sent\",\"phone_number\":\"+491701234567\"}\n\
         {\"ts\":\"1700000002.5\",\"device\":\"sim-phone-b\",\"app\":\"whatsapp\",\"kind\":\"received\",\"message\":\"from +491701234567 at 198.18.30.2\"}\n",
    )
    .unwrap();

    let key = tmp.path().join("key");
    std::fs::write(&key, b"a fixed test key").unwrap();
    let out = tmp.path().join("export");
    let run = |o: &Path| {
        Command::cargo_bin("matador")
            .unwrap()
            .arg("export")
            .arg(&src)
            .args(["--anonymize", "--out"])
            .arg(o)
            .arg("--key-file")
            .arg(&key)
            .output()
            .unwrap()
    };
    let o = run(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("capture-node-de-1.pcapng"));
    // Same key, same bytes.
    let out2 = tmp.path().join("export2");
    assert!(run(&out2).status.success());
    let a = std::fs::read(out.join("measurements/m0001/analysis.json")).unwrap();
    assert_eq!(
        a,
        std::fs::read(out2.join("measurements/m0001/analysis.json")).unwrap()
    );
    // The output folder must be new; --anonymize is required.
    assert_eq!(run(&out).status.code(), Some(1));
    let o = Command::cargo_bin("matador")
        .unwrap()
        .arg("export")
        .arg(&src)
        .arg("--out")
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("export-manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["schema"], "matador/export-manifest/1");
    // 6 phones + the router's two addresses.
    assert_eq!(manifest["mapped_addresses"], 8);
    let entry = |f: &str| {
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["file"] == f)
            .unwrap()
            .clone()
    };
    let pe = entry("measurements/m0001/capture-router-phone-a.pcap");
    assert_eq!(pe["action"], "pcap-truncated");
    assert_eq!(pe["records_truncated"], 2); // the empty ACK had no payload
    assert_eq!(pe["addresses"], 3);
    assert_eq!(
        entry("measurements/m0001/capture-node-de-1.pcapng")["action"],
        "not-exported"
    );
    assert!(
        !out.join("measurements/m0001/capture-node-de-1.pcapng")
            .exists()
    );

    // pcap: headers only, orig_len kept, phone address mapped inside the
    // benchmarking block, server address untouched.
    let recs = records(
        &std::fs::read(out.join("measurements/m0001/capture-router-phone-a.pcap")).unwrap(),
    );
    assert_eq!(recs.len(), 3);
    assert_eq!((recs[0].0, recs[0].1), (54, 354));
    assert_eq!((recs[2].0, recs[2].1), (62, 102));
    let mapped = IpAddr::from(<[u8; 4]>::try_from(&recs[0].2[26..30]).unwrap());
    assert_ne!(mapped, phone);
    assert!(
        common_prefix(mapped, phone) >= 15,
        "{mapped} left 198.18.0.0/15"
    );
    assert_eq!(&recs[0].2[30..34], &[198, 18, 20, 10]);
    assert_eq!(&recs[1].2[30..34], &recs[0].2[26..30]);
    let mapped6 = IpAddr::from(<[u8; 16]>::try_from(&recs[2].2[22..38]).unwrap());
    assert_ne!(mapped6, router6);
    assert!(common_prefix(mapped6, router6) >= 7);

    // Text: the same mapping everywhere, no phone address, serial or number left.
    let all_text: String = [
        "lab.json",
        "measurements/m0001/analysis.json",
        "measurements/m0001/events.jsonl",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(out.join(f)).unwrap())
    .collect();
    assert!(!all_text.contains("198.18.30.2\""), "phone address left");
    assert!(!all_text.contains("sim-phone-a") && !all_text.contains("491701234567"));
    assert!(all_text.contains("serial-phone-a") && all_text.contains(&format!("{mapped}")));
    assert!(!all_text.contains("phone_number"));
    assert!(all_text.contains("from +0000000 at "));

    // Prefix preservation over every pair of mapped lab addresses.
    let lab_out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("lab.json")).unwrap()).unwrap();
    let orig: Vec<IpAddr> = lab["phones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["addr"].as_str().unwrap().parse().unwrap())
        .collect();
    let new: Vec<IpAddr> = lab_out["phones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["addr"].as_str().unwrap().parse().unwrap())
        .collect();
    for i in 0..orig.len() {
        for j in 0..orig.len() {
            assert_eq!(
                common_prefix(orig[i], orig[j]),
                common_prefix(new[i], new[j])
            );
        }
    }

    // The report of the copy: same tables (nodes and servers are the data).
    let g = GroupSet::preset("pam2016").unwrap();
    let ra = report::build(&Campaign::load(&src).unwrap(), &db, &g, &Options::default()).unwrap();
    let rb = report::build(&Campaign::load(&out).unwrap(), &db, &g, &Options::default()).unwrap();
    assert_eq!(ra.table2, rb.table2);
    assert_eq!(ra.table3, rb.table3);
    assert_eq!(ra.dns, rb.dns);
    assert_eq!(ra.servers, rb.servers);
    let _ = db_path;
}
