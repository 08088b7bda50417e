//! The lab mmdb: every prefix of the address plan mapped to its country and
//! AS, so lab captures and traceroutes geolocate like real ones; each IPv4
//! prefix also as its IPv6 twin (see [`super::topology::V6_PREFIX`]).

use super::LabError;
use super::topology::{HOME_BLOCK, Plan, Topology, v6_net};
use matador::geo::mmdb::{MmdbRecord, MmdbWriter};
use std::net::IpAddr;
use std::path::Path;

/// The (prefix, record) pairs of a topology.
pub fn records(t: &Topology, p: &Plan) -> Vec<(IpAddr, u8, MmdbRecord)> {
    let rec = |c: &str, asn: u32, org: Option<&String>, dflt: &str| MmdbRecord {
        country_code: Some(c.to_string()),
        asn: Some(asn),
        org: Some(org.cloned().unwrap_or_else(|| dflt.to_string())),
    };
    let mut v = vec![(
        IpAddr::V4(HOME_BLOCK.0),
        HOME_BLOCK.1,
        rec(&t.country, t.asn, None, &format!("Lab network {}", t.name)),
    )];
    for (n, np) in t.nodes.iter().zip(&p.nodes) {
        v.push((
            IpAddr::V4(np.block.0),
            np.block.1,
            rec(
                &n.country,
                n.asn,
                n.org.as_ref(),
                &format!("Lab ISP {}", n.name),
            ),
        ));
    }
    for (d, dp) in t.datacenters.iter().zip(&p.dcs) {
        v.push((
            IpAddr::V4(dp.block.0),
            dp.block.1,
            rec(
                &d.country,
                d.asn,
                d.org.as_ref(),
                &format!("Lab DC {}", d.name),
            ),
        ));
    }
    let twins: Vec<_> = v
        .iter()
        .filter_map(|(a, l, r)| match a {
            IpAddr::V4(a) => {
                let (n, l) = v6_net(*a, *l);
                Some((IpAddr::V6(n), l, r.clone()))
            }
            IpAddr::V6(_) => None,
        })
        .collect();
    v.extend(twins);
    v
}

/// Writes the lab mmdb for `t` to `path`.
pub fn write_mmdb(t: &Topology, p: &Plan, path: &Path) -> Result<(), LabError> {
    let err = |message: String| LabError::Mmdb {
        path: path.to_path_buf(),
        message,
    };
    let mut w = MmdbWriter::new(
        "matador-lab",
        &format!(
            "matador virtual lab {} (198.18.0.0/15, fd00:1ab::/96)",
            t.name
        ),
    );
    for (a, l, r) in records(t, p) {
        w.insert(a, l, r).map_err(|e| err(e.to_string()))?;
    }
    w.write(path).map_err(|e| err(e.to_string()))
}
