//! `matador replay` end to end: output formats, exit codes, --jobs, --out.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn real_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures/real")
}

fn matador(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(args)
        .output()
        .unwrap()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn json_lines_for_a_directory_in_input_order() {
    let dir = real_dir();
    let out = matador(&["replay", "--json", "--jobs", "2", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 13);
    let names: Vec<&str> = lines
        .iter()
        .map(|v| v["capture"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for v in &lines {
        for key in [
            "capture",
            "format",
            "link_types",
            "packets",
            "bytes",
            "first_ts",
            "last_ts",
            "flows",
            "dns",
            "tls",
            "servers",
            "interference",
            "errors",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {}", v["capture"]);
        }
        // Timestamps are decimal strings with the capture's precision.
        assert!(v["first_ts"].as_str().unwrap().contains('.'));
    }
    let digi = lines
        .iter()
        .find(|v| {
            v["capture"]
                .as_str()
                .unwrap()
                .ends_with("digisocial.com.pcap")
        })
        .unwrap();
    let forged = digi["flows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["dst"] == "37.61.54.158" && f["dport"] == 80 && f["proto"] == "tcp");
    assert!(forged, "{}", digi["flows"]);
}

#[test]
fn a_broken_file_fails_the_run_but_the_others_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let good = real_dir().join("ndpi-threema.pcap");
    let bytes = std::fs::read(&good).unwrap();
    let cut = tmp.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..5000]).unwrap();
    let out = matador(&[
        "replay",
        "--json",
        cut.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    let err = &lines[0]["errors"][0];
    assert!(err["offset"].as_u64().unwrap() > 24);
    assert!(err["frame"].as_u64().unwrap() > 1);
    assert!(lines[0]["packets"].as_u64().unwrap() > 0);
    assert_eq!(lines[1]["errors"].as_array().unwrap().len(), 0);
    assert_eq!(lines[1]["packets"], 83);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 2"), "{stderr}");
    // The error on stderr names the file, the byte offset and the frame.
    let line = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(line.contains("cut.pcap"), "{line}");
    assert!(line.contains(&format!("byte {}", err["offset"])), "{line}");
    assert!(line.contains(&format!("frame {}", err["frame"])), "{line}");

    // The summary table has a row per capture with its error count.
    let out = matador(&[
        "replay",
        "--summary",
        cut.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let row = text.lines().find(|l| l.contains("cut.pcap")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    // capture, format, packets, flows, dns, snis, errors, servers per app
    assert_eq!(cells[6], "1", "{text}");
    assert_eq!(cells[7], "threema:1", "{text}");
    assert!(text.contains("threema:1"), "{text}");
    assert!(text.contains("total (2 captures)"), "{text}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(matador(&["replay"]).status.code(), Some(2));
    assert_eq!(
        matador(&["replay", "--jobs", "0", "x.pcap"]).status.code(),
        Some(2)
    );
    assert_eq!(
        matador(&["replay", "--bogus", "x.pcap"]).status.code(),
        Some(2)
    );
    assert_eq!(matador(&["replay", "--help"]).status.code(), Some(0));
}

#[test]
fn table_output_and_out_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let file = real_dir().join("lwerdna-simple_http_sll2.pcap");
    let outdir = tmp.path().join("out");
    let out = matador(&[
        "replay",
        "--out",
        outdir.to_str().unwrap(),
        file.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("== "), "{text}");
    assert!(text.contains("24 packets"), "{text}");
    assert!(text.contains("linux_sll2"), "{text}");
    // The same file twice gets two distinct names.
    for name in [
        "lwerdna-simple_http_sll2.pcap.json",
        "lwerdna-simple_http_sll2.pcap-2.json",
    ] {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(outdir.join(name)).unwrap()).unwrap();
        assert_eq!(v["packets"], 24);
    }
}
