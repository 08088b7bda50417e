//! Shards of a capture archive (`matador replay --shard k/n --out DIR`)
//! and their merge (`matador merge OUT DIR…`; docs/slurm.md): which
//! captures a shard read (`replay-shard.json`, one type for its writer and
//! its readers) and the join of the shards' output folders into what one
//! unsharded `replay --out` writes.

use crate::campaign::plan::ShardSpec;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Schema tag of `replay-shard.json`.
pub const REPLAY_SHARD_SCHEMA: &str = "matador/replay-shard/1";
/// Schema tag of `replay-merge.json`.
pub const REPLAY_MERGE_SCHEMA: &str = "matador/replay-merge/1";
/// The file a shard's `--out` folder holds.
const SHARD_FILE: &str = "replay-shard.json";
/// The outputs of one capture under `--out` (docs/replay.md).
const OUTPUT_EXTENSIONS: [&str; 4] = ["json", "flows.jsonl", "dns.jsonl", "tls.jsonl"];

/// `replay-shard.json`: which captures of which list a replay shard read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayShard {
    /// [`REPLAY_SHARD_SCHEMA`].
    pub schema: String,
    /// This shard (from 0).
    pub k: u32,
    /// Shards in all.
    pub n: u32,
    /// SHA-256 of the whole input list (`path<TAB>size<LF>` per capture).
    pub inputs_sha256: String,
    /// Captures in the whole list.
    pub inputs_total: usize,
    /// This shard's captures: position in the whole list, path, output name.
    pub inputs: Vec<(usize, String, String)>,
}

/// Why a replay shard could not be written, read or merged.
#[derive(Debug, thiserror::Error)]
pub enum ReplayShardError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `replay-shard.json` is not one.
    #[error("{}: not a {REPLAY_SHARD_SCHEMA} file: {source}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What did not parse.
        source: serde_json::Error,
    },
    /// No shard folder was given.
    #[error("no replay shard folders given")]
    NoShards,
    /// A folder is not a replay shard.
    #[error(
        "{}: not a replay shard (no replay-shard.json): campaign and replay shards cannot be merged together",
        .0.display()
    )]
    NotAShard(PathBuf),
    /// Two shards of different lists, or of different splits.
    #[error(
        "{} and {} are shards of different capture lists (or split differently: {n_a} vs {n_b} shards)",
        a.display(),
        b.display()
    )]
    DifferentLists {
        /// One shard.
        a: PathBuf,
        /// The other.
        b: PathBuf,
        /// Shards of `a`'s split.
        n_a: u32,
        /// Shards of `b`'s split.
        n_b: u32,
    },
    /// The same shard twice.
    #[error("shard {k} given twice: {} and {}", a.display(), b.display())]
    Twice {
        /// The shard.
        k: u32,
        /// One folder.
        a: PathBuf,
        /// The other.
        b: PathBuf,
    },
    /// Shards missing (and no `--partial`).
    #[error(
        "incomplete: shard(s) {} of {n} missing ({have} of {total} captures in the shards given); merge them too, or pass --partial",
        missing.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    )]
    Missing {
        /// The missing shards.
        missing: Vec<u32>,
        /// Shards in all.
        n: u32,
        /// Captures in the shards given.
        have: usize,
        /// Captures in the whole list.
        total: usize,
    },
    /// The merged folder exists with files in it.
    #[error("{}: exists and is not empty; merge into a new folder", .0.display())]
    OutNotEmpty(PathBuf),
    /// One capture's output in two shards.
    #[error("capture {path} is in two shards (output {name})")]
    CaptureTwice {
        /// The capture.
        path: String,
        /// Its output name.
        name: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReplayShardError + '_ {
    move |source| ReplayShardError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-256 (hex) of the input list, sizes included: shards of different
/// archives (or of a changed one) are told apart.
pub fn inputs_sha256(inputs: &[PathBuf]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in inputs {
        let size = fs::metadata(p).map_or(0, |m| m.len());
        ctx.update(format!("{}\t{size}\n", p.display()).as_bytes());
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Shard `spec` of the whole list `inputs` with their output names (named
/// over the whole list, so shards never collide): capture i goes to shard
/// i mod n. Returns the shard's record and its captures with their names.
pub fn split(
    inputs: Vec<PathBuf>,
    names: Vec<String>,
    spec: ShardSpec,
) -> (ReplayShard, Vec<PathBuf>, Vec<String>) {
    let record_sha = inputs_sha256(&inputs);
    let total = inputs.len();
    let mine: Vec<(usize, PathBuf, String)> = inputs
        .into_iter()
        .zip(names)
        .enumerate()
        .filter(|(i, _)| *i as u64 % u64::from(spec.n) == u64::from(spec.k))
        .map(|(i, (p, n))| (i, p, n))
        .collect();
    let record = ReplayShard {
        schema: REPLAY_SHARD_SCHEMA.into(),
        k: spec.k,
        n: spec.n,
        inputs_sha256: record_sha,
        inputs_total: total,
        inputs: mine
            .iter()
            .map(|(i, p, n)| (*i, p.display().to_string(), n.clone()))
            .collect(),
    };
    let (paths, names) = mine.into_iter().map(|(_, p, n)| (p, n)).unzip();
    (record, paths, names)
}

/// True when `dir` is the `--out` folder of a `replay --shard`.
pub fn is_replay_shard(dir: &Path) -> bool {
    dir.join(SHARD_FILE).is_file()
}

/// Writes `replay-shard.json` into `dir` (created if missing).
pub fn write(dir: &Path, s: &ReplayShard) -> Result<(), ReplayShardError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    let p = dir.join(SHARD_FILE);
    let text = serde_json::to_string_pretty(s).map_err(|source| ReplayShardError::Format {
        path: p.clone(),
        source,
    })?;
    crate::atomic_file::write(&p, format!("{text}\n").as_bytes()).map_err(io(&p))
}

/// Reads `dir`'s `replay-shard.json`.
pub fn read(dir: &Path) -> Result<ReplayShard, ReplayShardError> {
    let p = dir.join(SHARD_FILE);
    let t = fs::read_to_string(&p).map_err(io(&p))?;
    serde_json::from_str(&t).map_err(|source| ReplayShardError::Format { path: p, source })
}

/// What [`merge`] joined.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayMerge {
    /// Shards merged.
    pub shards: usize,
    /// Shards in all.
    pub n: u32,
    /// Captures in the shards merged.
    pub captures: usize,
    /// Captures in the whole list.
    pub total: usize,
    /// Shards not given (merged with `partial`).
    pub missing: Vec<u32>,
}

/// The shards read from `dirs`, sorted by shard, after the refusals: not
/// a shard, different lists or splits, a shard twice.
fn checked(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, ReplayShard)>, ReplayShardError> {
    let mut shards = Vec::new();
    for d in dirs {
        if !is_replay_shard(d) {
            return Err(ReplayShardError::NotAShard(d.clone()));
        }
        shards.push((d.clone(), read(d)?));
    }
    shards.sort_by_key(|(_, s)| s.k);
    let (d0, s0) = shards.first().ok_or(ReplayShardError::NoShards)?;
    for (d, s) in &shards[1..] {
        if s.inputs_sha256 != s0.inputs_sha256 || s.n != s0.n {
            return Err(ReplayShardError::DifferentLists {
                a: d0.clone(),
                b: d.clone(),
                n_a: s0.n,
                n_b: s.n,
            });
        }
    }
    if let Some(w) = shards.windows(2).find(|w| w[0].1.k == w[1].1.k) {
        return Err(ReplayShardError::Twice {
            k: w[0].1.k,
            a: w[0].0.clone(),
            b: w[1].0.clone(),
        });
    }
    Ok(shards)
}

/// Copies one shard's capture outputs into `out` and keeps its record
/// under `out/shards/<k>/`; `seen` refuses an output name twice.
fn copy_shard(
    out: &Path,
    dir: &Path,
    s: &ReplayShard,
    seen: &mut HashSet<String>,
) -> Result<(), ReplayShardError> {
    for (_, path, name) in &s.inputs {
        if !seen.insert(name.clone()) {
            return Err(ReplayShardError::CaptureTwice {
                path: path.clone(),
                name: name.clone(),
            });
        }
        for ext in OUTPUT_EXTENSIONS {
            let f = dir.join(format!("{name}.{ext}"));
            if f.is_file() {
                fs::copy(&f, out.join(format!("{name}.{ext}"))).map_err(io(&f))?;
            }
        }
    }
    let kept = out.join("shards").join(s.k.to_string());
    fs::create_dir_all(&kept).map_err(io(&kept))?;
    let from = dir.join(SHARD_FILE);
    fs::copy(&from, kept.join(SHARD_FILE)).map_err(io(&from))?;
    Ok(())
}

/// Joins replay shards into `out`: the shards' output files in one folder
/// (named as one unsharded `replay --out` names them) and
/// `replay-merge.json`, after the refusals of campaign shards: different
/// input lists, a shard twice, and missing shards unless `partial`.
pub fn merge(out: &Path, dirs: &[PathBuf], partial: bool) -> Result<ReplayMerge, ReplayShardError> {
    let shards = checked(dirs)?;
    let s0 = &shards[0].1;
    let present: HashSet<u32> = shards.iter().map(|(_, s)| s.k).collect();
    let missing: Vec<u32> = (0..s0.n).filter(|k| !present.contains(k)).collect();
    let have: usize = shards.iter().map(|(_, s)| s.inputs.len()).sum();
    if !missing.is_empty() && !partial {
        return Err(ReplayShardError::Missing {
            missing,
            n: s0.n,
            have,
            total: s0.inputs_total,
        });
    }
    let empty = match fs::read_dir(out) {
        Ok(mut d) => d.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(io(out)(e)),
    };
    if !empty {
        return Err(ReplayShardError::OutNotEmpty(out.to_path_buf()));
    }
    fs::create_dir_all(out).map_err(io(out))?;
    let mut seen = HashSet::new();
    for (d, s) in &shards {
        copy_shard(out, d, s, &mut seen)?;
    }
    let mut inputs: Vec<&(usize, String, String)> =
        shards.iter().flat_map(|(_, s)| &s.inputs).collect();
    inputs.sort();
    let merged = serde_json::json!({
        "schema": REPLAY_MERGE_SCHEMA,
        "n": s0.n,
        "inputs_sha256": s0.inputs_sha256,
        "inputs_total": s0.inputs_total,
        "complete": missing.is_empty(),
        "missing_shards": missing.iter().map(u32::to_string).collect::<Vec<_>>(),
        "shards": shards.iter().map(|(d, s)| serde_json::json!({"k": s.k, "from": d.display().to_string(), "captures": s.inputs.len()})).collect::<Vec<_>>(),
        "captures": inputs.iter().map(|(i, p, n)| serde_json::json!({"index": i, "path": p, "output": format!("{n}.json")})).collect::<Vec<_>>(),
    });
    let p = out.join("replay-merge.json");
    let text =
        serde_json::to_string_pretty(&merged).map_err(|source| ReplayShardError::Format {
            path: p.clone(),
            source,
        })?;
    crate::atomic_file::write(&p, format!("{text}\n").as_bytes()).map_err(io(&p))?;
    Ok(ReplayMerge {
        shards: shards.len(),
        n: s0.n,
        captures: have,
        total: s0.inputs_total,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(k: u32, n: u32) -> ShardSpec {
        format!("{k}/{n}").parse().unwrap()
    }

    fn list(n: usize) -> (Vec<PathBuf>, Vec<String>) {
        (0..n)
            .map(|i| {
                (
                    PathBuf::from(format!("/nowhere/c{i}.pcap")),
                    format!("c{i}"),
                )
            })
            .unzip()
    }

    #[test]
    fn shards_are_disjoint_and_complete() {
        for n in 1..6u32 {
            let mut seen = Vec::new();
            for k in 0..n {
                let (inputs, names) = list(11);
                let (rec, paths, names) = split(inputs, names, spec(k, n));
                assert_eq!((rec.k, rec.n, rec.inputs_total), (k, n, 11));
                assert_eq!(paths.len(), names.len());
                assert!(rec.inputs.iter().all(|(i, _, _)| *i as u32 % n == k));
                seen.extend(rec.inputs.iter().map(|(i, _, _)| *i));
            }
            seen.sort();
            assert_eq!(seen, (0..11).collect::<Vec<_>>(), "n = {n}");
        }
    }

    fn shard_dir(root: &Path, k: u32, n: u32, total: usize) -> PathBuf {
        let (inputs, names) = list(total);
        let (rec, _, names) = split(inputs, names, spec(k, n));
        let dir = root.join(format!("s{k}of{n}"));
        write(&dir, &rec).unwrap();
        for name in names {
            fs::write(
                dir.join(format!("{name}.json")),
                format!("{{\"{name}\":1}}\n"),
            )
            .unwrap();
        }
        dir
    }

    #[test]
    fn merge_joins_and_refuses_by_name() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (shard_dir(t.path(), 0, 2, 5), shard_dir(t.path(), 1, 2, 5));
        let m = merge(&t.path().join("m"), &[b.clone(), a.clone()], false).unwrap();
        assert_eq!((m.shards, m.captures, m.total), (2, 5, 5));
        assert!(t.path().join("m/c4.json").is_file());
        assert!(t.path().join("m/shards/1/replay-shard.json").is_file());
        let e = merge(&t.path().join("x"), std::slice::from_ref(&a), false).unwrap_err();
        assert!(e.to_string().contains("shard(s) 1 of 2 missing"), "{e}");
        assert!(merge(&t.path().join("y"), std::slice::from_ref(&a), true).is_ok());
        let e = merge(&t.path().join("z"), &[a.clone(), a.clone()], false).unwrap_err();
        assert!(e.to_string().contains("shard 0 given twice"), "{e}");
        let other = shard_dir(t.path(), 1, 3, 5);
        let e = merge(&t.path().join("w"), &[a.clone(), other], false).unwrap_err();
        assert!(e.to_string().contains("different capture lists"), "{e}");
        let e = merge(&t.path().join("m"), &[a, b], false).unwrap_err();
        assert!(e.to_string().contains("not empty"), "{e}");
        let e = merge(&t.path().join("v"), &[t.path().to_path_buf()], false).unwrap_err();
        assert!(e.to_string().contains("not a replay shard"), "{e}");
    }
}
