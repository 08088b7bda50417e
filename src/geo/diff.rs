//! Addresses whose country changed between two databases (the seed's
//! "Changes to ip2location database" slide), grouped by prefix.
//!
//! Each changed address is grouped under the more specific of the two
//! databases' networks containing it: both databases are constant over their
//! own network, so every address of that prefix changed the same way.

use super::GeoError;
use super::db::MmdbFile;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// Addresses of one prefix that moved from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeGroup {
    /// The prefix (more specific of the old and new networks).
    pub prefix: String,
    /// Country in the old database (`None`: no record).
    pub old: Option<String>,
    /// Country in the new database (`None`: no record).
    pub new: Option<String>,
    /// The changed addresses of the input inside the prefix.
    pub addresses: Vec<IpAddr>,
}

/// Result of a diff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffReport {
    /// Distinct addresses compared.
    pub compared: usize,
    /// Addresses whose country changed.
    pub changed: usize,
    /// The changes, sorted by prefix.
    pub groups: Vec<ChangeGroup>,
}

fn prefix_len(net: &str) -> u8 {
    net.rsplit_once('/')
        .and_then(|(_, l)| l.parse().ok())
        .unwrap_or(0)
}

/// Prefix start (for sorting), prefix, old country, new country.
type GroupKey = (IpAddr, String, Option<String>, Option<String>);

/// Compares the country of every address in `ips` between `old` and `new`.
pub fn diff(old: &MmdbFile, new: &MmdbFile, ips: &[IpAddr]) -> Result<DiffReport, GeoError> {
    let mut uniq: Vec<IpAddr> = ips.iter().map(|i| i.to_canonical()).collect();
    uniq.sort();
    uniq.dedup();
    // Key sorts by address family, then prefix text; fine for a table.
    let mut groups: BTreeMap<GroupKey, Vec<IpAddr>> = BTreeMap::new();
    let mut changed = 0;
    for &ip in &uniq {
        let o = old.lookup(ip)?;
        let n = new.lookup(ip)?;
        let oc = o.as_ref().and_then(|a| a.country).map(str::to_string);
        let nc = n.as_ref().and_then(|a| a.country).map(str::to_string);
        if oc == nc {
            continue;
        }
        changed += 1;
        let on = o.map(|a| a.network);
        let nn = n.map(|a| a.network);
        let prefix = match (on, nn) {
            (Some(a), Some(b)) => {
                if prefix_len(&a) >= prefix_len(&b) {
                    a
                } else {
                    b
                }
            }
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => ip.to_string(),
        };
        let start = prefix
            .split_once('/')
            .and_then(|(a, _)| a.parse().ok())
            .unwrap_or(ip);
        groups.entry((start, prefix, oc, nc)).or_default().push(ip);
    }
    Ok(DiffReport {
        compared: uniq.len(),
        changed,
        groups: groups
            .into_iter()
            .map(|((_, prefix, old, new), addresses)| ChangeGroup {
                prefix,
                old,
                new,
                addresses,
            })
            .collect(),
    })
}

/// Compares two whole databases: every prefix (the intersection of an old
/// and a new network) whose country differs, without addresses.
pub fn diff_all(old: &MmdbFile, new: &MmdbFile) -> Result<DiffReport, GeoError> {
    let mut groups = Vec::new();
    // Networks of the two trees are nested or disjoint; each intersection of
    // an old and a new network is the more specific of the two. Walk each
    // side's networks and keep those not strictly covered by the other side
    // (equal ones only once, from the new side).
    for (side, this, other) in [(0, new, old), (1, old, new)] {
        for (start, len) in this.networks()? {
            let (c_this, _) = this.country_in_network(start)?;
            let (c_other, net_other) = other.country_in_network(start)?;
            let other_len = net_other.map_or(0, |(_, l)| l);
            let keep = if side == 0 {
                other_len <= len
            } else {
                other_len < len
            };
            if !keep || c_this == c_other {
                continue;
            }
            let (o, n) = if side == 0 {
                (c_other, c_this)
            } else {
                (c_this, c_other)
            };
            groups.push((
                start,
                len,
                ChangeGroup {
                    prefix: format!("{start}/{len}"),
                    old: o.map(str::to_string),
                    new: n.map(str::to_string),
                    addresses: Vec::new(),
                },
            ));
        }
    }
    groups.sort_by_key(|(s, l, _)| (*s, *l));
    Ok(DiffReport {
        compared: 0,
        changed: groups.len(),
        groups: groups.into_iter().map(|(_, _, g)| g).collect(),
    })
}

/// Reads an address list: one address per line (the first whitespace- or
/// comma-separated token), `#` comments and blank lines ignored.
pub fn read_ip_list(path: &Path) -> Result<Vec<IpAddr>, GeoError> {
    let text = std::fs::read_to_string(path).map_err(|source| GeoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(tok) = line.split([' ', '\t', ',']).find(|t| !t.is_empty()) else {
            continue;
        };
        out.push(super::parse_ip(
            tok,
            &format!("{}:{}", path.display(), i + 1),
        )?);
    }
    Ok(out)
}
