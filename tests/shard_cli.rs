//! `matador run --shard k/n --dry-run`: the shards of the lab demo's plan
//! are disjoint, complete and named in the printed plan; bad `--shard`
//! values are usage errors.

use std::collections::BTreeSet;
use std::process::{Command, Output};

fn matador(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_matador"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

/// Measurement ids of a `--dry-run` table.
fn ids(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| {
            w.len() == 5 && w.starts_with('m') && w[1..].chars().all(|c| c.is_ascii_digit())
        })
        .map(String::from)
        .collect()
}

#[test]
fn dry_run_shards_partition_the_demo_plan() {
    let whole = ids(&matador(&["run", "--dry-run", "scenarios/lab-demo.yaml"]));
    assert_eq!(whole.len(), 16);
    for n in [1u32, 2, 3, 5, 16, 20] {
        let mut all = BTreeSet::new();
        let mut count = 0;
        for k in 0..n {
            let spec = format!("{k}/{n}");
            let out = matador(&[
                "run",
                "--dry-run",
                "--shard",
                &spec,
                "scenarios/lab-demo.yaml",
            ]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(text.contains(&format!("shard {spec} of plan ")), "{text}");
            assert!(text.contains("(16 measurements in all)"), "{text}");
            let part = ids(&out);
            count += part.len();
            all.extend(part);
        }
        assert_eq!(count, 16, "disjoint for n={n}");
        assert_eq!(
            all,
            whole.iter().cloned().collect::<BTreeSet<_>>(),
            "complete for n={n}"
        );
    }
    // The demo's 8 groups (2 country pairs × 4 apps) of baseline + message:
    // shard 0/2 holds groups 0, 2, 4, 6.
    let s0 = ids(&matador(&[
        "run",
        "--dry-run",
        "--shard",
        "0/2",
        "scenarios/lab-demo.yaml",
    ]));
    assert_eq!(
        s0,
        [
            "m0001", "m0002", "m0005", "m0006", "m0009", "m0010", "m0013", "m0014"
        ]
    );
}

#[test]
fn bad_shard_values_are_usage_errors() {
    for (bad, why) in [
        ("2/2", "below n"),
        ("0/0", "at least 1"),
        ("a/2", "k is not"),
    ] {
        let out = matador(&[
            "run",
            "--dry-run",
            "--shard",
            bad,
            "scenarios/lab-demo.yaml",
        ]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(why), "{bad}: {e}");
    }
    // --shard with --resume: the resumed folder's plan already says.
    let out = matador(&["run", "--shard", "0/2", "--resume", "somewhere"]);
    assert_eq!(out.status.code(), Some(2));
}
