//! Insta snapshots of `matador replay`'s output: `--help`, the tables for
//! the sample captures in captures/, and the JSON of two captures. Review a
//! changed snapshot like a changed output contract (docs/replay.md).

use std::path::Path;
use std::process::Command;

/// Runs matador in the crate root (so paths in the output are relative and
/// stable) with a fixed help width.
fn matador(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn help() {
    let (code, text) = matador(&["replay", "--help"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(text);
}

#[test]
fn summary_table_of_the_sample_captures() {
    let (code, text) = matador(&["replay", "--summary", "--jobs", "2", "captures"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(text);
}

#[test]
fn table_of_one_capture() {
    let (code, text) = matador(&["replay", "captures/ndpi-whatsapp_login_chat.pcap"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(text);
}

fn json(capture: &str) -> serde_json::Value {
    assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(capture).exists());
    let (code, text) = matador(&["replay", "--json", capture]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1);
    serde_json::from_str(lines[0]).unwrap()
}

#[test]
fn json_of_the_signal_capture() {
    insta::assert_json_snapshot!(json("captures/ndpi-signal.pcap"));
}

#[test]
fn json_of_the_whatsapp_login_capture() {
    insta::assert_json_snapshot!(json("captures/ndpi-whatsapp_login_chat.pcap"));
}

#[test]
fn json_of_the_multi_section_pcapng() {
    insta::assert_json_snapshot!(json("captures/hadrielk-test202.pcapng"));
}
