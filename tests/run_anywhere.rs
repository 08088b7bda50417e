//! `cd /tmp && matador run <repo>/scenarios/lab-demo.yaml --lab`: the
//! shipped demo scenario, run from a directory that holds nothing of the
//! repository, finds its phone profiles, app profiles and lab topology from
//! the scenario's place (docs/campaign.md#files), runs whole, and writes
//! its record and report under `--out`. Needs root and network namespaces
//! (it fails, never skips, without them).

mod lab_common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn lab_demo_runs_from_any_directory() {
    lab_common::require_root();
    let cwd = tempfile::tempdir().expect("tempdir");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/lab-demo.yaml");
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_matador"))
        .current_dir(cwd.path())
        .args(["run", "--lab"])
        .arg(&scenario)
        // Found from the scenario's place, not from a data directory named
        // in the environment. (`--out` defaults to campaigns/ here.)
        .env_remove("MATADOR_DATA_DIR")
        .output()
        .expect("run matador");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "matador run --lab from {} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        cwd.path().display(),
        out.status
    );
    eprintln!(
        "lab-demo from {}: {:.1} s",
        cwd.path().display(),
        t0.elapsed().as_secs_f64()
    );
    let dirs: Vec<PathBuf> = std::fs::read_dir(cwd.path().join("campaigns"))
        .expect("campaigns/ under the working directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let dir = &dirs[0];
    let index = read_json(&dir.join("index.json"));
    let ms = index["measurements"].as_array().expect("measurements");
    assert_eq!(ms.len(), 16, "the demo's 16 measurements");
    for m in ms {
        assert_eq!(m["status"], "complete", "{m}");
    }
    assert!(dir.join("report.html").is_file(), "no report.html");
    // The app profiles it ran with are the repository's, kept in the record.
    let copy = dir.join(matador::campaign::record::APP_PROFILES_DIR);
    let kept = matador::scenario::apps::AppProfiles::load_copy(&copy).expect("app-profiles/");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("device-profiles/apps");
    let shipped = matador::scenario::apps::AppProfiles::load_dir(&repo).unwrap();
    let texts = |s: &matador::scenario::apps::AppProfiles| {
        s.apps.iter().map(|a| a.text.clone()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&kept), texts(&shipped));
    // Nothing was written outside the working directory's campaigns/.
    let entries: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["campaigns"], "{entries:?}");
}
