//! `matador merge`: shard campaign folders (`run --shard k/n`) joined into
//! one campaign folder, which `replay`, `report` and the dataset read like
//! any other (docs/slurm.md).
//!
//! Refused, each with its own [`MergeError`]: a folder that is not a shard,
//! shards of different plans (scenario, plan hash or shard count), the same
//! shard twice, the same measurement in two shards, a measurement a shard
//! recorded but was not given, shards whose parts do not add up to the plan
//! they name, shards from different labs or app profiles, and, unless
//! `partial`, missing shards and unfinished measurements (named).
//!
//! The merged folder holds the union of the shards' measurements (copied),
//! the whole plan, `merge.json` (which shard ran what, from where), every
//! shard's own `plan.json`, `journal.jsonl` and `provenance.json` under
//! `shards/<k>/`, the journals concatenated (renumbered) and the
//! provenance runs concatenated; then the campaign-wide analysis runs over
//! the whole, so pooled evidence is the unsharded campaign's.

use super::plan::{Plan, PlannedMeasurement, ShardInfo};
use super::record::{Index, IndexEntry, JournalLine, Record, read_journal, write_atomic};
use crate::analysis::correlate::{CorrelateConfig, replay_campaign};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Schema tag of `merge.json`.
pub const MERGE_SCHEMA: &str = "matador/merge/1";

/// Why shards cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No shard folder was given.
    #[error("no shard folders given")]
    NoShards,
    /// A file could not be read or written.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A folder is not a campaign folder (no readable `plan.json`).
    #[error("{}: not a campaign folder: {why}", dir.display())]
    NotACampaign {
        /// The folder.
        dir: PathBuf,
        /// What is missing or invalid.
        why: String,
    },
    /// A campaign folder that was not run with `--shard`.
    #[error("{}: not a shard (its plan.json has no `shard` section; run with --shard k/n)", dir.display())]
    NotAShard {
        /// The folder.
        dir: PathBuf,
    },
    /// Two shards of different plans (scenario, plan hash or shard count).
    #[error("{} and {} are shards of different plans: {what}", a.display(), b.display())]
    DifferentPlans {
        /// One shard.
        a: PathBuf,
        /// The other.
        b: PathBuf,
        /// What differs.
        what: String,
    },
    /// The same shard number given twice.
    #[error("shard {k} given twice: {} and {}", a.display(), b.display())]
    DuplicateShard {
        /// The shard number.
        k: u32,
        /// One folder.
        a: PathBuf,
        /// The other.
        b: PathBuf,
    },
    /// The same measurement in two shards.
    #[error("measurement {id} is in two shards: {} and {}", a.display(), b.display())]
    DuplicateMeasurement {
        /// Its id.
        id: String,
        /// One shard.
        a: PathBuf,
        /// The other.
        b: PathBuf,
    },
    /// A shard recorded a measurement its plan does not hold.
    #[error("{}: measurement {id} is recorded but not in this shard's plan", dir.display())]
    NotInShardPlan {
        /// The shard.
        dir: PathBuf,
        /// The measurement.
        id: String,
    },
    /// Shards are missing (refused unless `--partial`).
    #[error(
        "incomplete: shard(s) {} of {n} missing ({} measurement(s) of {total} in the shards given); merge them too, or pass --partial",
        list(missing),
        present
    )]
    MissingShards {
        /// The missing shard numbers.
        missing: Vec<u32>,
        /// Number of shards.
        n: u32,
        /// Measurements the given shards hold.
        present: usize,
        /// Measurements of the whole plan.
        total: usize,
    },
    /// Planned measurements a shard has not finished (refused unless `--partial`).
    #[error(
        "incomplete: {} measurement(s) not finished: {}; finish them with `matador run --resume SHARD`, or pass --partial",
        count,
        detail
    )]
    Unfinished {
        /// How many.
        count: usize,
        /// `shard k (dir): ids`, per shard.
        detail: String,
    },
    /// The shards' parts do not add up to the plan they name.
    #[error(
        "the shards' measurements do not add up to the plan they name (hash {expected}, got {got}): were they made by different matador versions or edited?"
    )]
    PlanMismatch {
        /// The hash the shards name.
        expected: String,
        /// The hash of their union.
        got: String,
    },
    /// Shards analysed with different app profiles or run in different labs.
    #[error("{} and {} differ in {what}: their measurements cannot be analysed together", a.display(), b.display())]
    DifferentSetup {
        /// One shard.
        a: PathBuf,
        /// The other.
        b: PathBuf,
        /// `app-profiles/`, `lab.mmdb`, the lab's nodes…
        what: String,
    },
    /// The output folder exists and is not empty.
    #[error("{}: exists and is not empty; merge into a new folder", dir.display())]
    OutputExists {
        /// The folder.
        dir: PathBuf,
    },
    /// The merged folder's record could not be written.
    #[error("{0}")]
    Record(#[from] super::CampaignError),
    /// The campaign-wide analysis of the merged folder failed.
    #[error("analysis of the merged campaign: {0}")]
    Analysis(#[from] crate::analysis::correlate::CorrelateError),
    /// The merged folder's app profiles cannot be loaded.
    #[error("app profiles of the merged campaign: {0}")]
    Profiles(String),
}

fn list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn io(file: &Path) -> impl FnOnce(std::io::Error) -> MergeError + '_ {
    move |e| MergeError::Io {
        file: file.to_path_buf(),
        source: e,
    }
}

/// `merge.json`: what the merged folder was made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeRecord {
    /// [`MERGE_SCHEMA`].
    pub schema: String,
    /// Scenario name.
    pub scenario: String,
    /// Hash of the whole plan ([`Plan::sha256`]).
    pub plan_sha256: String,
    /// Measurements of the whole plan.
    pub plan_measurements: usize,
    /// Number of shards.
    pub n: u32,
    /// Every shard present, every planned measurement finished.
    pub complete: bool,
    /// The shards, by number.
    pub shards: Vec<MergedShard>,
    /// Shards not given (a `--partial` merge).
    pub missing_shards: Vec<u32>,
    /// Planned measurements of the given shards not finished (`--partial`).
    pub unfinished: Vec<String>,
}

/// One shard of `merge.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedShard {
    /// Its number.
    pub k: u32,
    /// The folder it was merged from, as given.
    pub from: String,
    /// Its measurements (planned).
    pub measurements: Vec<String>,
    /// Of those, the finished ones (complete, failed or skipped).
    pub finished: usize,
    /// The shard's own files, kept: `shards/<k>/`.
    pub kept: String,
}

/// A shard folder as read.
struct Shard {
    dir: PathBuf,
    plan: Plan,
    info: ShardInfo,
    index: Index,
}

fn read_shard(dir: &Path) -> Result<Shard, MergeError> {
    let not = |why: String| MergeError::NotACampaign {
        dir: dir.to_path_buf(),
        why,
    };
    let pj = dir.join("plan.json");
    let text = std::fs::read_to_string(&pj).map_err(|e| not(format!("plan.json: {e}")))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| not(format!("plan.json: {e}")))?;
    let Some(info) = plan.shard.clone() else {
        return Err(MergeError::NotAShard {
            dir: dir.to_path_buf(),
        });
    };
    let ij = dir.join("index.json");
    let index: Index = match std::fs::read_to_string(&ij) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| not(format!("index.json: {e}")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index {
            schema: super::record::INDEX_SCHEMA.into(),
            campaign: plan.scenario.clone(),
            measurements: Vec::new(),
        },
        Err(e) => return Err(io(&ij)(e)),
    };
    Ok(Shard {
        dir: dir.to_path_buf(),
        plan,
        info,
        index,
    })
}

/// Plan order of measurement ids (`m0002` < `m0010` < `m10000`).
fn plan_order(id: &str) -> (usize, &str) {
    (id.len(), id)
}

/// What a merge found, before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeCheck {
    /// `merge.json` as it will be written.
    pub record: MergeRecord,
}

/// Checks that `dirs` are shards that can be merged (every refusal of
/// [`MergeError`]); `partial` lets missing shards and unfinished
/// measurements through (named in the result).
pub fn check(dirs: &[PathBuf], partial: bool) -> Result<MergeCheck, MergeError> {
    let shards = read_all(dirs)?;
    check_shards(&shards, partial).map(|(c, _)| c)
}

fn read_all(dirs: &[PathBuf]) -> Result<Vec<Shard>, MergeError> {
    if dirs.is_empty() {
        return Err(MergeError::NoShards);
    }
    let mut shards = dirs
        .iter()
        .map(|d| read_shard(d))
        .collect::<Result<Vec<_>, _>>()?;
    shards.sort_by_key(|s| s.info.k);
    Ok(shards)
}

/// The checks; also returns the merged plan.
fn check_shards(shards: &[Shard], partial: bool) -> Result<(MergeCheck, Plan), MergeError> {
    let first = &shards[0];
    for s in &shards[1..] {
        let differ = |what: String| MergeError::DifferentPlans {
            a: first.dir.clone(),
            b: s.dir.clone(),
            what,
        };
        if s.plan.scenario != first.plan.scenario {
            return Err(differ(format!(
                "scenario {} vs {}",
                first.plan.scenario, s.plan.scenario
            )));
        }
        if s.info.plan_sha256 != first.info.plan_sha256 {
            return Err(differ(format!(
                "plan hash {} vs {}",
                first.info.plan_sha256, s.info.plan_sha256
            )));
        }
        if s.info.n != first.info.n {
            return Err(differ(format!(
                "split into {} vs {} shards",
                first.info.n, s.info.n
            )));
        }
    }
    for w in shards.windows(2) {
        if w[0].info.k == w[1].info.k {
            return Err(MergeError::DuplicateShard {
                k: w[0].info.k,
                a: w[0].dir.clone(),
                b: w[1].dir.clone(),
            });
        }
    }
    let mut owner: BTreeMap<&str, &Path> = BTreeMap::new();
    for s in shards {
        for m in &s.plan.measurements {
            if let Some(a) = owner.insert(&m.id, &s.dir) {
                return Err(MergeError::DuplicateMeasurement {
                    id: m.id.clone(),
                    a: a.to_path_buf(),
                    b: s.dir.clone(),
                });
            }
        }
        for e in &s.index.measurements {
            if !s.plan.measurements.iter().any(|m| m.id == e.id) {
                return Err(MergeError::NotInShardPlan {
                    dir: s.dir.clone(),
                    id: e.id.clone(),
                });
            }
        }
    }
    let n = first.info.n;
    let present: BTreeSet<u32> = shards.iter().map(|s| s.info.k).collect();
    let missing: Vec<u32> = (0..n).filter(|k| !present.contains(k)).collect();
    if !missing.is_empty() && !partial {
        return Err(MergeError::MissingShards {
            missing,
            n,
            present: owner.len(),
            total: first.info.plan_measurements,
        });
    }
    let mut unfinished = Vec::new();
    let mut detail = Vec::new();
    for s in shards {
        let open: Vec<String> = s
            .plan
            .measurements
            .iter()
            .filter(|m| !s.index.measurements.iter().any(|e| e.id == m.id))
            .map(|m| m.id.clone())
            .collect();
        if !open.is_empty() {
            detail.push(format!(
                "shard {} ({}): {}",
                s.info.k,
                s.dir.display(),
                open.join(", ")
            ));
        }
        unfinished.extend(open);
    }
    if !unfinished.is_empty() && !partial {
        return Err(MergeError::Unfinished {
            count: unfinished.len(),
            detail: detail.join("; "),
        });
    }
    let mut measurements: Vec<PlannedMeasurement> = shards
        .iter()
        .flat_map(|s| s.plan.measurements.iter().cloned())
        .collect();
    measurements.sort_by(|a, b| plan_order(&a.id).cmp(&plan_order(&b.id)));
    let mut plan = first.plan.clone();
    plan.measurements = measurements;
    plan.shard = None;
    if missing.is_empty() {
        let got = plan.sha256();
        if got != first.info.plan_sha256 {
            return Err(MergeError::PlanMismatch {
                expected: first.info.plan_sha256.clone(),
                got,
            });
        }
    }
    check_setup(shards)?;
    let record = MergeRecord {
        schema: MERGE_SCHEMA.into(),
        scenario: first.plan.scenario.clone(),
        plan_sha256: first.info.plan_sha256.clone(),
        plan_measurements: first.info.plan_measurements,
        n,
        complete: missing.is_empty() && unfinished.is_empty(),
        shards: shards
            .iter()
            .map(|s| MergedShard {
                k: s.info.k,
                from: s.dir.display().to_string(),
                measurements: s.plan.measurements.iter().map(|m| m.id.clone()).collect(),
                finished: s.index.measurements.len(),
                kept: format!("shards/{}", s.info.k),
            })
            .collect(),
        missing_shards: missing,
        unfinished,
    };
    Ok((MergeCheck { record }, plan))
}

/// The files of a folder (relative path → bytes), for comparing copies.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(b) = std::fs::read(&p) {
                out.insert(p.strip_prefix(root).unwrap_or(&p).to_path_buf(), b);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What of `lab.json` the analysis and report depend on: each node's
/// name, kind, country and addresses, each phone's name and addresses
/// (not the lab instance's id, sockets or namespaces).
fn lab_shape(dir: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("lab.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut out = Vec::new();
    for (list, keys) in [
        (
            "nodes",
            &["name", "kind", "country", "addr", "addr6", "asn"][..],
        ),
        ("phones", &["name", "addr", "addr6"][..]),
    ] {
        for n in v.get(list).and_then(|x| x.as_array()).into_iter().flatten() {
            let fields: Vec<String> = keys
                .iter()
                .map(|k| n.get(*k).map(|x| x.to_string()).unwrap_or_default())
                .collect();
            out.push(format!("{list}: {}", fields.join(" ")));
        }
    }
    out.sort();
    Some(out)
}

/// The lab mmdb's search tree and data: its bytes before the metadata
/// marker (each lab writes its own build time into the metadata).
fn mmdb_content(dir: &Path) -> Option<Vec<u8>> {
    const MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
    let mut b = std::fs::read(dir.join("lab.mmdb")).ok()?;
    if let Some(i) = b.windows(MARKER.len()).rposition(|w| w == MARKER) {
        b.truncate(i);
    }
    Some(b)
}

/// Shards must have analysed with the same app profiles and, when they
/// ran in a lab, in the same lab (addresses, geolocation database).
fn check_setup(shards: &[Shard]) -> Result<(), MergeError> {
    let first = &shards[0];
    let profiles = tree(&first.dir.join(super::record::APP_PROFILES_DIR));
    let mmdb = mmdb_content(&first.dir);
    let lab = lab_shape(&first.dir);
    for s in &shards[1..] {
        let differ = |what: &str| MergeError::DifferentSetup {
            a: first.dir.clone(),
            b: s.dir.clone(),
            what: what.into(),
        };
        // A shard that ran nothing may have no copy yet: nothing to compare.
        let p = tree(&s.dir.join(super::record::APP_PROFILES_DIR));
        if !p.is_empty() && !profiles.is_empty() && p != profiles {
            return Err(differ(
                "app-profiles/ (the app profiles they were analysed with)",
            ));
        }
        if mmdb_content(&s.dir) != mmdb {
            return Err(differ("lab.mmdb (the lab's geolocation database)"));
        }
        if lab_shape(&s.dir) != lab {
            return Err(differ("lab.json (the lab's nodes, phones and addresses)"));
        }
    }
    Ok(())
}

/// Copies a folder recursively (files and folders only).
fn copy_dir(from: &Path, to: &Path) -> Result<(), MergeError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    for e in std::fs::read_dir(from).map_err(io(from))? {
        let e = e.map_err(io(from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let name = e.file_name();
        if crate::atomic_file::is_temporary(&name.to_string_lossy()) {
            continue;
        }
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(io(&dst))?;
        }
    }
    Ok(())
}

fn json_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// The result of [`merge`].
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The merged folder.
    pub dir: PathBuf,
    /// `merge.json` as written.
    pub record: MergeRecord,
    /// Measurements in the merged index.
    pub measurements: usize,
}

/// Merges shard folders `dirs` into the new folder `out` (created; an
/// existing empty folder is used), then runs the campaign-wide analysis
/// over the whole. `partial`: see [`check`].
pub fn merge(out: &Path, dirs: &[PathBuf], partial: bool) -> Result<Merged, MergeError> {
    let shards = read_all(dirs)?;
    let (checked, plan) = check_shards(&shards, partial)?;
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(MergeError::OutputExists {
            dir: out.to_path_buf(),
        });
    }
    // Built beside and renamed at the end: a failed merge leaves no
    // half-made campaign under OUT.
    let name = out
        .file_name()
        .map_or_else(|| "merged".into(), |n| n.to_string_lossy().into_owned());
    let tmp = out.with_file_name(format!(".{name}.merging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = write_merged(&tmp, &shards, &checked, &plan);
    let count = match result {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if out.exists() {
        std::fs::remove_dir(out).map_err(io(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(Merged {
        dir: out.to_path_buf(),
        record: checked.record,
        measurements: count,
    })
}

/// Writes the merged campaign into `out` and analyses it; returns the
/// number of measurements in its index.
fn write_merged(
    out: &Path,
    shards: &[Shard],
    checked: &MergeCheck,
    plan: &Plan,
) -> Result<usize, MergeError> {
    std::fs::create_dir_all(out.join("measurements")).map_err(io(out))?;
    let first = &shards[0].dir;
    // The setup the shards share (checked equal above).
    for f in ["scenario.yaml", "lab.json", "lab.mmdb", "lab-topology.yaml"] {
        if first.join(f).is_file() {
            std::fs::copy(first.join(f), out.join(f)).map_err(io(&out.join(f)))?;
        }
    }
    if let Some(s) = shards
        .iter()
        .find(|s| s.dir.join(super::record::APP_PROFILES_DIR).is_dir())
    {
        copy_dir(
            &s.dir.join(super::record::APP_PROFILES_DIR),
            &out.join(super::record::APP_PROFILES_DIR),
        )?;
    }
    write_atomic(&out.join("plan.json"), &json_bytes(plan))?;
    let mut entries: Vec<IndexEntry> = Vec::new();
    let mut journal: Vec<JournalLine> = Vec::new();
    let mut runs: Vec<serde_json::Value> = Vec::new();
    for s in shards {
        for e in &s.index.measurements {
            let from = s.dir.join("measurements").join(&e.id);
            if from.is_dir() {
                copy_dir(&from, &out.join("measurements").join(&e.id))?;
            }
            entries.push(e.clone());
        }
        let kept = out.join("shards").join(s.info.k.to_string());
        std::fs::create_dir_all(&kept).map_err(io(&kept))?;
        for f in ["plan.json", "journal.jsonl", "provenance.json", "lab.json"] {
            if s.dir.join(f).is_file() {
                std::fs::copy(s.dir.join(f), kept.join(f)).map_err(io(&kept.join(f)))?;
            }
        }
        journal.extend(read_journal(&s.dir.join("journal.jsonl"))?);
        if let Ok(t) = std::fs::read_to_string(s.dir.join("provenance.json"))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&t)
        {
            for mut r in v
                .get("runs")
                .and_then(|r| r.as_array())
                .cloned()
                .unwrap_or_default()
            {
                // Which shard each run belongs to (readers ignore the field).
                if let Some(o) = r.as_object_mut() {
                    o.insert("shard".into(), serde_json::json!(s.info.k));
                }
                runs.push(r);
            }
        }
    }
    entries.sort_by(|a, b| plan_order(&a.id).cmp(&plan_order(&b.id)));
    let count = entries.len();
    let index = Index {
        schema: super::record::INDEX_SCHEMA.into(),
        campaign: plan.scenario.clone(),
        measurements: entries,
    };
    write_atomic(&out.join("index.json"), &json_bytes(&index))?;
    // One journal, shard after shard, renumbered (the shards' own journals
    // are kept under shards/<k>/).
    let mut jb = Vec::new();
    for (i, mut l) in journal.into_iter().enumerate() {
        l.seq = i as u64;
        jb.extend(serde_json::to_vec(&l).unwrap_or_default());
        jb.push(b'\n');
    }
    write_atomic(&out.join("journal.jsonl"), &jb)?;
    write_atomic(
        &out.join("provenance.json"),
        &json_bytes(&serde_json::json!({
            "schema": super::provenance::PROVENANCE_SCHEMA,
            "runs": runs,
        })),
    )?;
    write_atomic(&out.join("merge.json"), &json_bytes(&checked.record))?;
    // Opening the record builds index.sqlite; the analysis pools evidence
    // over every shard's measurements, as one unsharded campaign does.
    let (mut record, _) = Record::open(out)?;
    record.journal(
        None,
        "merge",
        super::record::StepState::Done,
        Some(format!(
            "{} shard(s) of {}, {count} measurement(s){}",
            shards.len(),
            checked.record.n,
            if checked.record.complete {
                ""
            } else {
                ", incomplete (--partial)"
            }
        )),
    )?;
    let copy = out.join(super::record::APP_PROFILES_DIR);
    let profiles = if copy.is_dir() {
        crate::scenario::apps::AppProfiles::load_copy(&copy)
            .map_err(|e| MergeError::Profiles(e.to_string()))?
    } else {
        crate::scenario::apps::AppProfiles::builtin()
    };
    let cfg = CorrelateConfig {
        exempt: crate::net::addrspace::recorded_exemption(out),
        ..CorrelateConfig::default()
    };
    replay_campaign(out, &std::sync::Arc::new(profiles), &cfg)?;
    record.sync_sqlite()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::plan::{Kind, PLAN_SCHEMA, ShardSpec};
    use crate::campaign::record::Status;

    /// A whole plan: 4 groups (app × 2 country pairs) of baseline + message.
    fn whole() -> Plan {
        let cc = |s: &str| -> crate::scenario::CountryCode {
            serde_json::from_value(serde_json::json!(s)).unwrap()
        };
        let mut measurements = Vec::new();
        for (a, b) in [("DE", "BR"), ("DE", "DE")] {
            for app in ["whatsapp", "signal"] {
                for kind in [Kind::Baseline, Kind::Message] {
                    measurements.push(PlannedMeasurement {
                        id: format!("m{:04}", measurements.len() + 1),
                        kind,
                        app: app.into(),
                        sender: "lab-a".into(),
                        receiver: "lab-b".into(),
                        sender_country: cc(a),
                        receiver_country: cc(b),
                        sender_nodes: vec![format!("{}-1", a.to_lowercase())],
                        receiver_nodes: vec![format!("{}-1", b.to_lowercase())],
                        repetition: 1,
                        messages: vec![],
                        baseline_secs: 0.0,
                        estimated_secs: 30.0,
                    });
                }
            }
        }
        Plan {
            schema: PLAN_SCHEMA.into(),
            scenario: "t".into(),
            matador: "0.1.0".into(),
            phones: ["lab-a".into(), "lab-b".into()],
            pairs: vec![],
            phone_pairs: vec![],
            measurements,
            shard: None,
        }
    }

    /// A shard folder of `plan` as `run --shard k/n` leaves it, with the
    /// first `finished` of its measurements recorded (all when `None`).
    fn shard_dir(root: &Path, plan: &Plan, k: u32, n: u32, finished: Option<usize>) -> PathBuf {
        let p = plan.shard(ShardSpec { k, n });
        let mut r = Record::create(&root.join(format!("s{k}-{n}")), &p, "name: t\n").unwrap();
        r.write_lab(
            &serde_json::json!({"schema": "matador/lab/1", "id": format!("lab{k}"),
            "nodes": [{"name": "de-1", "country": "DE", "addr": "198.18.0.1", "kind": "node"}],
            "phones": []}),
        )
        .unwrap();
        crate::campaign::provenance::append(
            &r.dir,
            crate::campaign::provenance::run_provenance(false, vec![], vec![]),
        )
        .unwrap();
        let take = finished.unwrap_or(p.measurements.len());
        for m in p.measurements.iter().take(take) {
            r.journal(
                Some(&m.id),
                "measurement",
                super::super::record::StepState::Done,
                None,
            )
            .unwrap();
            let mut e = IndexEntry::new(m);
            e.status = Status::Complete;
            r.finish(e).unwrap();
        }
        r.dir.clone()
    }

    fn err(dirs: &[PathBuf], partial: bool) -> String {
        check(dirs, partial).unwrap_err().to_string()
    }

    #[test]
    fn complete_shards_merge_with_every_shards_provenance() {
        let t = tempfile::tempdir().unwrap();
        let plan = whole();
        let dirs: Vec<PathBuf> = (0..3)
            .map(|k| shard_dir(t.path(), &plan, k, 3, None))
            .collect();
        // Given in any order.
        let given = vec![dirs[2].clone(), dirs[0].clone(), dirs[1].clone()];
        let out = t.path().join("merged");
        let m = merge(&out, &given, false).unwrap();
        assert!(m.record.complete);
        assert_eq!(m.measurements, 8);
        // Built beside and renamed: nothing of the work folder is left.
        let left: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("merging"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(m.record.plan_sha256, plan.sha256());
        assert_eq!(
            m.record.shards.iter().map(|s| s.k).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        // The merged plan is the whole plan; the index holds every measurement once.
        let (rec, merged_plan) = Record::open(&out).unwrap();
        assert_eq!(merged_plan.sha256(), plan.sha256());
        assert!(merged_plan.shard.is_none());
        let ids: Vec<&str> = rec
            .index
            .measurements
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        assert_eq!(
            ids,
            plan.measurements
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
        );
        // Provenance: every shard's runs, tagged, and its own files kept.
        let prov: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("provenance.json")).unwrap())
                .unwrap();
        let shards: Vec<u64> = prov["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["shard"].as_u64().unwrap())
            .collect();
        assert_eq!(shards, vec![0, 1, 2]);
        for k in 0..3 {
            let kept: Plan = serde_json::from_str(
                &std::fs::read_to_string(out.join(format!("shards/{k}/plan.json"))).unwrap(),
            )
            .unwrap();
            assert_eq!(kept.shard.unwrap().k, k);
            assert!(out.join(format!("shards/{k}/journal.jsonl")).is_file());
        }
        let mj: MergeRecord =
            serde_json::from_str(&std::fs::read_to_string(out.join("merge.json")).unwrap())
                .unwrap();
        assert_eq!(mj, m.record);
        // The journals are one, renumbered, ending with the merge.
        let j = read_journal(&out.join("journal.jsonl")).unwrap();
        assert!(j.iter().enumerate().all(|(i, l)| l.seq == i as u64));
        assert_eq!(j.last().unwrap().step, "merge");
        // A second merge into the same folder is refused.
        assert!(matches!(
            merge(&out, &given, false),
            Err(MergeError::OutputExists { .. })
        ));
    }

    #[test]
    fn each_refusal_is_named() {
        let t = tempfile::tempdir().unwrap();
        let plan = whole();
        let s0 = shard_dir(t.path(), &plan, 0, 2, None);
        let s1 = shard_dir(t.path(), &plan, 1, 2, None);
        // Missing shard: named, with the counts; --partial lets it through.
        let e = err(std::slice::from_ref(&s0), false);
        assert!(
            e.contains("shard(s) 1 of 2 missing") && e.contains("4 measurement(s) of 8"),
            "{e}"
        );
        let c = check(std::slice::from_ref(&s0), true).unwrap();
        assert_eq!(
            (c.record.complete, c.record.missing_shards.clone()),
            (false, vec![1])
        );
        // The same shard twice.
        let e = err(&[s0.clone(), s0.clone()], false);
        assert!(e.contains("shard 0 given twice"), "{e}");
        // Shards of a different split.
        let t3 = shard_dir(t.path(), &plan, 1, 3, None);
        let e = err(&[s0.clone(), t3], false);
        assert!(
            e.contains("different plans") && e.contains("2 vs 3 shards"),
            "{e}"
        );
        // Shards of a different plan (another scenario content).
        let mut other = whole();
        other.measurements[0].repetition = 2;
        let o1 = shard_dir(&t.path().join("other"), &other, 1, 2, None);
        let e = err(&[s0.clone(), o1], false);
        assert!(
            e.contains("different plans") && e.contains("plan hash"),
            "{e}"
        );
        // Not a shard at all.
        let whole_dir = Record::create(&t.path().join("w"), &plan, "name: t\n")
            .unwrap()
            .dir;
        let e = err(&[s0.clone(), whole_dir], false);
        assert!(e.contains("not a shard"), "{e}");
        // Not a campaign.
        let e = err(&[s0.clone(), t.path().join("nothing")], false);
        assert!(e.contains("not a campaign folder"), "{e}");
        // An unfinished shard: its open measurements named; --partial passes.
        let u1 = shard_dir(&t.path().join("u"), &plan, 1, 2, Some(1));
        let e = err(&[s0.clone(), u1.clone()], false);
        let open: Vec<String> = plan.shard(ShardSpec { k: 1, n: 2 }).measurements[1..]
            .iter()
            .map(|m| m.id.clone())
            .collect();
        assert!(
            e.contains("3 measurement(s) not finished")
                && e.contains("shard 1")
                && e.contains(&open.join(", ")),
            "{e}"
        );
        let c = check(&[s0.clone(), u1], true).unwrap();
        assert_eq!(c.record.unfinished, open);
        // The same measurement in two shards (a shard's plan edited).
        let d1 = shard_dir(&t.path().join("d"), &plan, 1, 2, None);
        let pj = d1.join("plan.json");
        let mut p: Plan = serde_json::from_str(&std::fs::read_to_string(&pj).unwrap()).unwrap();
        p.measurements.push(plan.measurements[0].clone());
        std::fs::write(&pj, serde_json::to_vec(&p).unwrap()).unwrap();
        let e = err(&[s0.clone(), d1], false);
        assert!(e.contains("measurement m0001 is in two shards"), "{e}");
        // A measurement recorded that the shard was not given.
        let x1 = shard_dir(&t.path().join("x"), &plan, 1, 2, None);
        let ij = x1.join("index.json");
        let mut idx: Index = serde_json::from_str(&std::fs::read_to_string(&ij).unwrap()).unwrap();
        idx.measurements
            .push(IndexEntry::new(&plan.measurements[0]));
        std::fs::write(&ij, serde_json::to_vec(&idx).unwrap()).unwrap();
        let e = err(&[s0.clone(), x1], false);
        assert!(
            e.contains("m0001 is recorded but not in this shard's plan"),
            "{e}"
        );
        // Parts that do not add up to the plan they name (a measurement dropped).
        let y1 = shard_dir(&t.path().join("y"), &plan, 1, 2, None);
        let pj = y1.join("plan.json");
        let mut p: Plan = serde_json::from_str(&std::fs::read_to_string(&pj).unwrap()).unwrap();
        let dropped = p.measurements.pop().unwrap();
        std::fs::write(&pj, serde_json::to_vec(&p).unwrap()).unwrap();
        let ij = y1.join("index.json");
        let mut idx: Index = serde_json::from_str(&std::fs::read_to_string(&ij).unwrap()).unwrap();
        idx.measurements.retain(|e| e.id != dropped.id);
        std::fs::write(&ij, serde_json::to_vec(&idx).unwrap()).unwrap();
        let e = err(&[s0.clone(), y1], false);
        assert!(e.contains("do not add up"), "{e}");
        // Different labs (another geolocation database).
        let l1 = shard_dir(&t.path().join("l"), &plan, 1, 2, None);
        std::fs::write(l1.join("lab.mmdb"), b"other").unwrap();
        let e = err(&[s0.clone(), l1], false);
        assert!(e.contains("lab.mmdb"), "{e}");
        // The good pair still merges (nothing above touched it).
        assert!(check(&[s0, s1], false).unwrap().record.complete);
    }
}
