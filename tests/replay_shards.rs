//! `matador replay --shard k/n` over an archive of real captures (not made
//! by matador: /work/shared/captures/real, see its MANIFEST.md), joined by
//! `matador merge`: the merged folder holds exactly the files one
//! unsharded `replay --out` writes, byte for byte; incomplete and mixed
//! sets are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared real captures: beside the checkout (`../shared`), or above a
/// worktree of it.
fn real_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/captures/real"))
        .find(|p| p.is_dir())
        .expect("shared/captures/real next to the checkout (or above it)")
}

fn matador(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The files of a folder (name → bytes), without the shard bookkeeping.
fn outputs(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .filter(|(n, _)| !n.starts_with("replay-"))
        .map(|(n, p)| (n, std::fs::read(p).unwrap()))
        .collect()
}

#[test]
fn replay_shards_merge_into_the_unsharded_output() {
    let real = real_dir();
    let real = real.to_str().unwrap();
    let t = tempfile::tempdir().unwrap();
    let p = |s: &str| t.path().join(s).display().to_string();
    ok(&matador(&["replay", "--json", "--out", &p("whole"), real]));
    let whole = outputs(&t.path().join("whole"));
    assert!(whole.len() >= 13, "{:?}", whole.keys());
    let mut per_shard = Vec::new();
    for k in 0..3 {
        let dir = p(&format!("s{k}"));
        ok(&matador(&[
            "replay",
            "--json",
            "--shard",
            &format!("{k}/3"),
            "--out",
            &dir,
            real,
        ]));
        let rec: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(&dir).join("replay-shard.json")).unwrap(),
        )
        .unwrap();
        assert_eq!((rec["k"].as_u64(), rec["n"].as_u64()), (Some(k), Some(3)));
        per_shard.push(outputs(Path::new(&dir)));
    }
    // Disjoint, and each shard really holds a part (13 captures over 3).
    let total: usize = per_shard.iter().map(|s| s.len()).sum();
    assert_eq!(total, whole.len());
    assert!(
        per_shard
            .iter()
            .all(|s| !s.is_empty() && s.len() < whole.len())
    );

    // A missing shard is named; --partial takes what is there.
    let e = matador(&["merge", &p("m1"), &p("s0"), &p("s2")]);
    assert!(!e.status.success());
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(msg.contains("shard(s) 1 of 3 missing"), "{msg}");
    ok(&matador(&[
        "merge",
        "--partial",
        &p("m1"),
        &p("s0"),
        &p("s2"),
    ]));
    assert_eq!(
        outputs(&t.path().join("m1")).len(),
        per_shard[0].len() + per_shard[2].len()
    );
    // The same shard twice.
    let e = matador(&["merge", &p("m2"), &p("s0"), &p("s0"), &p("s1")]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && msg.contains("shard 0 given twice"),
        "{msg}"
    );
    // Shards of another split (or another archive).
    ok(&matador(&[
        "replay",
        "--json",
        "--shard",
        "1/2",
        "--out",
        &p("o1"),
        real,
    ]));
    let e = matador(&["merge", &p("m3"), &p("s0"), &p("o1")]);
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && msg.contains("different capture lists"),
        "{msg}"
    );

    // The complete set: the unsharded output, byte for byte.
    ok(&matador(&["merge", &p("m"), &p("s2"), &p("s0"), &p("s1")]));
    assert_eq!(outputs(&t.path().join("m")), whole);
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.path().join("m/replay-merge.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["complete"], true);
    let captures = whole.keys().filter(|n| n.ends_with(".json")).count();
    assert_eq!(rec["captures"].as_array().unwrap().len(), captures);
}
