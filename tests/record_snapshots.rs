//! The campaign record's JSON contract, byte for byte, on a stored
//! virtual-lab campaign (tests/fixtures/campaigns/lab-snap: `matador run
//! --lab` of its own scenario.yaml, whatsapp and signal DE→BR with a baseline
//! each, a censor in BR forging signal.org and resetting whatsapp.net; its
//! analysis.json files are as `matador replay` rewrites them, with relative
//! capture paths). Issue 23: typed results must serialise to the JSON they
//! replaced; these tests are the proof. Review a changed snapshot like a
//! changed file format (docs/campaign-record.md, docs/replay.md, docs/report.md).
//!
//! Pinned here:
//! - `matador replay --json CAMPAIGN` (stdout) and the `analysis.json` files
//!   it rewrites (equal to the stored ones, byte for byte);
//! - the record files the campaign writer owns (index.json, meta.json,
//!   plan.json) read and written back through the writer's types;
//! - `matador report` as JSON, Markdown, CSV files and HTML (hashed: large).
//!
//! Nothing in these outputs depends on the time of the run, so nothing is
//! normalised.

use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURE: &str = "tests/fixtures/campaigns/lab-snap";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A writable copy of the fixture as `<tmp>/lab-snap` (the name reports
/// and replay print).
fn campaign_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lab-snap");
    copy_dir(&fixture(), &dir);
    (tmp, dir)
}

/// Runs matador in `cwd` and returns (exit code, stdout).
fn matador(cwd: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some(),
        "matador {args:?} was killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn analysis_files(campaign: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(campaign.join("measurements"))
        .unwrap()
        .map(|e| e.unwrap().path().join("analysis.json"))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

/// FNV-1a 64: a stable digest of a large output (no hashing crate needed).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn replay_json_of_the_lab_campaign() {
    let (tmp, dir) = campaign_copy();
    let (code, text) = matador(tmp.path(), &["replay", "--json", "lab-snap"]);
    assert_eq!(code, 0);
    // Every line is one JSON object (captures, then the measurement).
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    insta::assert_snapshot!(text);
    // The analysis.json files replay rewrote are the stored ones, byte for byte.
    let stored = analysis_files(&fixture());
    assert_eq!(stored.len(), 4);
    for (new, old) in analysis_files(&dir).iter().zip(&stored) {
        assert_eq!(
            std::fs::read(new).unwrap(),
            std::fs::read(old).unwrap(),
            "{} differs from the stored one",
            new.display()
        );
    }
}

#[test]
fn campaign_record_files_round_trip_through_the_writer_types() {
    use matador::campaign::plan::Plan;
    use matador::campaign::record::{Index, IndexEntry};
    // As the campaign writes them: pretty JSON and a final newline.
    fn same<T: serde::Serialize + serde::de::DeserializeOwned>(p: &Path) {
        let body = std::fs::read(p).unwrap();
        let v: T = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let mut again = serde_json::to_vec_pretty(&v).unwrap();
        again.push(b'\n');
        assert_eq!(
            String::from_utf8(again).unwrap(),
            String::from_utf8(body).unwrap(),
            "{}",
            p.display()
        );
    }
    let dir = fixture();
    same::<Index>(&dir.join("index.json"));
    same::<Plan>(&dir.join("plan.json"));
    for a in analysis_files(&dir) {
        same::<IndexEntry>(&a.with_file_name("meta.json"));
    }
}

#[test]
fn analysis_files_round_trip_through_the_writer_type() {
    use matador::analysis::correlate::MeasurementAnalysis;
    for p in analysis_files(&fixture()) {
        let body = std::fs::read(&p).unwrap();
        let a: MeasurementAnalysis = serde_json::from_slice(&body).unwrap();
        let again = serde_json::to_vec_pretty(&a).unwrap();
        assert_eq!(
            String::from_utf8(again).unwrap(),
            String::from_utf8(body).unwrap(),
            "{}",
            p.display()
        );
    }
}

#[test]
fn report_json_of_the_lab_campaign() {
    let (tmp, _dir) = campaign_copy();
    let (code, text) = matador(tmp.path(), &["report", "--format", "json", "lab-snap"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(text);
}

#[test]
fn report_markdown_of_the_lab_campaign() {
    let (tmp, _dir) = campaign_copy();
    let (code, text) = matador(tmp.path(), &["report", "--format", "md", "lab-snap"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!(text);
}

#[test]
fn report_csv_files_of_the_lab_campaign() {
    let (tmp, _dir) = campaign_copy();
    let (code, _) = matador(
        tmp.path(),
        &["report", "--format", "csv", "--out", "out", "lab-snap"],
    );
    assert_eq!(code, 0);
    // The CSV files; `dataset/` (Parquet, tests/report_dataset.rs) beside them.
    let mut files: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut all = String::new();
    for f in files {
        all.push_str(&format!(
            "==> {} <==\n",
            f.file_name().unwrap().to_string_lossy()
        ));
        all.push_str(&std::fs::read_to_string(&f).unwrap());
    }
    insta::assert_snapshot!(all);
}

#[test]
fn report_html_of_the_lab_campaign() {
    let (tmp, _dir) = campaign_copy();
    let (code, _) = matador(
        tmp.path(),
        &["report", "--format", "html", "--out", "out", "lab-snap"],
    );
    assert_eq!(code, 0);
    let html = std::fs::read(tmp.path().join("out/report.html")).unwrap();
    assert!(String::from_utf8_lossy(&html).contains("</html>"));
    // ~130 kB of inline SVG: pinned by length and digest (on a change,
    // diff the pages by hand before updating).
    insta::assert_snapshot!(format!(
        "{} bytes, fnv1a64 {:016x}",
        html.len(),
        fnv1a(&html)
    ));
}

#[test]
fn replay_json_of_the_sample_captures() {
    // Raw stdout (tests/replay_snapshots.rs re-serialises parsed JSON, which
    // does not see the order of the keys).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, text) = matador(root, &["replay", "--json", "--jobs", "2", "captures"]);
    assert_eq!(code, 0);
    assert_eq!(text.lines().count(), 11);
    insta::assert_snapshot!(text);
}
