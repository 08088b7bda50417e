//! `provenance.json` (schema `matador/provenance/1`): what a campaign ran
//! with, one entry per run (the first run and every `--resume`, which may
//! use another binary or other nodes): matador's version and source commit,
//! the controlling host's OS, the geo databases (path, SHA-256, size, mmdb
//! metadata), and each node's OS, kernel and clock offset as its agent
//! reports them. Phones' facts are per measurement (`phones.json`).

use super::CampaignError;
use super::record::{now, write_atomic};
use crate::capture::Timestamp;
use crate::net::agent::client::{Agent, NodeConfig};
use crate::net::agent::protocol::NodeOs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Schema tag of `provenance.json`.
pub const PROVENANCE_SCHEMA: &str = "matador/provenance/1";

/// `provenance.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// [`PROVENANCE_SCHEMA`].
    pub schema: String,
    /// One entry per run of the campaign (first run, then each resume).
    pub runs: Vec<RunProvenance>,
}

/// What one run of the campaign used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProvenance {
    /// When the run started (host clock).
    pub started: Timestamp,
    /// `run` or `resume`.
    pub kind: String,
    /// The matador build.
    pub matador: MatadorBuild,
    /// The controlling host (phones, router captures).
    pub host: NodeOs,
    /// Geo databases and range tables the campaign's analysis and report use.
    pub geo: Vec<GeoFile>,
    /// The remote nodes, as their agents describe them.
    pub nodes: Vec<NodeFacts>,
}

/// The matador build that ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatadorBuild {
    /// Crate version.
    pub version: String,
    /// `git rev-parse HEAD` of the source tree the binary was built from,
    /// read at run time when that tree still exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    /// That tree had uncommitted changes (`git status --porcelain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_dirty: Option<bool>,
    /// The executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
}

/// One geo database or range table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoFile {
    /// What it is used for: `country`, `asn`, `country+asn` (the lab mmdb),
    /// `groups`.
    pub role: String,
    /// Path as used (relative paths are relative to the campaign folder
    /// when the file was copied there).
    pub path: String,
    /// SHA-256 of the file's bytes (lower-case hex); absent when unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// mmdb metadata `database_type` (the database's name and edition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_type: Option<String>,
    /// mmdb metadata `build_epoch` (its version: seconds since 1970).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_epoch: Option<u64>,
    /// Why the file could not be read (missing, corrupt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A node's facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeFacts {
    /// Node name (scenario / lab).
    pub node: String,
    /// Its host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// OS and kernel (absent from agents older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<NodeOs>,
    /// Agent (matador) version on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Node clock minus host clock, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_s: Option<f64>,
    /// Uncertainty of that offset, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_uncertainty_s: Option<f64>,
    /// Why the node could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        ctx.update(&buf[..k]);
        n += k as u64;
    }
    let hex = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, n))
}

/// Describes one geo file: hash, size and (for mmdb files) metadata.
/// `shown` is the path written into the record.
pub fn geo_file(role: &str, path: &Path, shown: &str) -> GeoFile {
    let mut g = GeoFile {
        role: role.into(),
        path: shown.into(),
        sha256: None,
        bytes: None,
        database_type: None,
        build_epoch: None,
        error: None,
    };
    match sha256_file(path) {
        Ok((h, n)) => {
            g.sha256 = Some(h);
            g.bytes = Some(n);
        }
        Err(e) => {
            g.error = Some(format!("{}: {e}", path.display()));
            return g;
        }
    }
    if path.extension().is_some_and(|e| e == "mmdb") {
        match crate::geo::db::MmdbFile::open(path, "geo", "--geo-db") {
            Ok(db) => {
                g.database_type = Some(db.database_type().to_string());
                g.build_epoch = Some(db.build_epoch());
            }
            Err(e) => g.error = Some(e.to_string()),
        }
    }
    g
}

/// The geo files a campaign's report uses by default (the code of
/// `matador report`): the lab mmdb copied into the campaign folder, else
/// the scenario's `geo.db` and the default ASN database, else the default
/// country and ASN databases; plus an interest-group file.
pub fn geo_files(
    campaign: &Path,
    scenario_dir: &Path,
    geo: &crate::scenario::GeoSpec,
) -> Vec<GeoFile> {
    use crate::geo::db::{ASN_FILE, COUNTRY_FILE, default_geo_dir};
    let mut v = Vec::new();
    let lab = campaign.join("lab.mmdb");
    if lab.is_file() {
        v.push(geo_file("country+asn", &lab, "lab.mmdb"));
    } else {
        let country = geo
            .db
            .as_ref()
            .map(|p| scenario_dir.join(p))
            .unwrap_or_else(|| default_geo_dir().join(COUNTRY_FILE));
        let asn = default_geo_dir().join(ASN_FILE);
        for (role, p) in [("country", country), ("asn", asn)] {
            v.push(geo_file(role, &p, &p.display().to_string()));
        }
    }
    let groups = scenario_dir.join(&geo.groups);
    if groups.is_file() {
        v.push(geo_file("groups", &groups, &groups.display().to_string()));
    }
    v
}

/// The matador build that is running.
pub fn matador_build() -> MatadorBuild {
    let tree = crate::source_dir();
    let git = |args: &[&str]| -> Option<String> {
        if !tree.join(".git").exists() {
            return None;
        }
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(tree)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| c.len() == 40);
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    MatadorBuild {
        version: env!("CARGO_PKG_VERSION").into(),
        git_commit: commit,
        git_dirty: dirty,
        exe: std::env::current_exe()
            .ok()
            .map(|p| p.display().to_string()),
    }
}

/// Asks each node's agent (over SSH) for its health (host name, OS,
/// kernel) and clock offset, each node bounded by `timeout`. A node that
/// does not answer is recorded with its error, never fatal.
pub fn node_facts(
    rt: &tokio::runtime::Handle,
    configs: &BTreeMap<String, NodeConfig>,
    timeout: Duration,
) -> Vec<NodeFacts> {
    // All nodes at once: each answer costs an SSH connection.
    let answers = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (name, cfg) in configs {
            let (name, cfg) = (name.clone(), cfg.clone());
            set.spawn(async move {
                let r = tokio::time::timeout(timeout, async {
                    let a = Agent::connect(&cfg).await?;
                    let h = a.health().await?;
                    let c = a.clock_offset(5).await?;
                    let version = a.banner().version.clone();
                    let _ = a.shutdown().await;
                    Ok::<_, crate::net::agent::client::AgentError>((h, c, version))
                })
                .await;
                (name, r)
            });
        }
        let mut v = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(x) = r {
                v.push(x);
            }
        }
        v
    });
    let mut out: Vec<NodeFacts> = configs
        .keys()
        .map(|name| NodeFacts {
            node: name.clone(),
            hostname: None,
            os: None,
            agent_version: None,
            clock_offset_s: None,
            clock_uncertainty_s: None,
            error: Some("the query task failed".into()),
        })
        .collect();
    for (name, r) in answers {
        let Some(f) = out.iter_mut().find(|f| f.node == name) else {
            continue;
        };
        f.error = None;
        match r {
            Ok(Ok((h, c, version))) => {
                f.hostname = Some(h.hostname);
                f.os = h.os;
                f.agent_version = Some(version);
                f.clock_offset_s = Some(c.offset_ns as f64 / 1e9);
                f.clock_uncertainty_s = Some(c.uncertainty_ns as f64 / 1e9);
            }
            Ok(Err(e)) => f.error = Some(e.to_string()),
            Err(_) => f.error = Some(format!("no answer within {timeout:?}")),
        }
    }
    out
}

/// A run's provenance from its parts.
pub fn run_provenance(resumed: bool, geo: Vec<GeoFile>, nodes: Vec<NodeFacts>) -> RunProvenance {
    RunProvenance {
        started: Timestamp::from_f64(now()),
        kind: if resumed { "resume" } else { "run" }.into(),
        matador: matador_build(),
        host: NodeOs::local(),
        geo,
        nodes,
    }
}

/// Appends a run to `<dir>/provenance.json` (created when absent), atomically.
pub fn append(dir: &Path, run: RunProvenance) -> Result<PathBuf, CampaignError> {
    let p = dir.join("provenance.json");
    let mut prov = match std::fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str::<Provenance>(&t).map_err(|e| CampaignError::Record {
            file: p.clone(),
            message: format!("not a {PROVENANCE_SCHEMA} file: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Provenance {
            schema: PROVENANCE_SCHEMA.into(),
            runs: Vec::new(),
        },
        Err(e) => {
            return Err(CampaignError::Io {
                file: p.clone(),
                source: e,
            });
        }
    };
    prov.runs.push(run);
    let mut b = serde_json::to_vec_pretty(&prov).map_err(|e| CampaignError::Record {
        file: p.clone(),
        message: e.to_string(),
    })?;
    b.push(b'\n');
    write_atomic(&p, &b)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_files_and_reads_mmdb_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("t.csv");
        std::fs::write(&f, b"abc").unwrap();
        let g = geo_file("asn", &f, "t.csv");
        assert_eq!(
            g.sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(g.bytes, Some(3));
        let mut w = crate::geo::mmdb::MmdbWriter::new("matador-test", "t");
        w.set_build_epoch(1_700_000_000);
        let m = tmp.path().join("x.mmdb");
        w.write(&m).unwrap();
        let g = geo_file("country", &m, "x.mmdb");
        assert_eq!(g.database_type.as_deref(), Some("matador-test"));
        assert_eq!(g.build_epoch, Some(1_700_000_000));
        assert!(g.error.is_none() && g.sha256.is_some(), "{g:?}");
        let g = geo_file("country", &tmp.path().join("none.mmdb"), "none.mmdb");
        assert!(g.error.is_some() && g.sha256.is_none());
    }

    #[test]
    fn runs_accumulate() {
        let tmp = tempfile::tempdir().unwrap();
        append(tmp.path(), run_provenance(false, Vec::new(), Vec::new())).unwrap();
        let p = append(tmp.path(), run_provenance(true, Vec::new(), Vec::new())).unwrap();
        let v: Provenance = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        assert_eq!(v.schema, PROVENANCE_SCHEMA);
        assert_eq!(v.runs.len(), 2);
        assert_eq!(v.runs[1].kind, "resume");
        assert_eq!(v.runs[0].matador.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(v.runs[0].host.kernel, "Linux");
    }
}
