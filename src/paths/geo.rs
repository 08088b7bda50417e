//! Hop geolocation and path locality (application path vs direct path).
//!
//! [`annotate`] fills each hop's `geo` from a [`GeoDb`] and checks the
//! country against the hop's minimum RTT from the vantage point with
//! [`Checker`] (speed of light in fibre, plus country jumps between hops).
//! [`locality`] lists the countries and UN M49 regions a path crosses and
//! [`compare`] sets an application path beside the direct network path
//! between the same nodes, which is what the seed's Tables 2 and 3 count.

use serde::Serialize;

use crate::geo::db::GeoDb;
use crate::geo::m49::M49;
use crate::geo::plausibility::{Checker, HopObs, Location, Status};

use super::PathsError;
use super::model::{HopGeo, Trace};

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Plausible => "plausible",
        Status::Implausible => "implausible",
        Status::Unknown => "unknown",
    }
}

/// Geolocates every answering address of every hop of `trace` and checks
/// the first address of each hop against its minimum RTT from `vantage`
/// (the node's location, when known).
pub fn annotate(
    trace: &mut Trace,
    db: &GeoDb,
    checker: &Checker,
    vantage: Option<&Location>,
) -> Result<(), PathsError> {
    let mut obs = Vec::with_capacity(trace.result.len());
    for hop in &mut trace.result {
        hop.geo.clear();
        for addr in hop.addrs() {
            let a = db.lookup(addr)?;
            hop.geo.push(HopGeo {
                addr,
                country: a.country,
                asn: a.asn,
                special: a.special.map(str::to_string),
                plausibility: "unknown".into(),
                reasons: Vec::new(),
            });
        }
        obs.push(HopObs {
            country: hop.geo.first().and_then(|g| g.country.clone()),
            rtt_ms: hop.min_rtt(),
        });
    }
    let verdicts = checker.check_path(vantage, &obs);
    for (hop, v) in trace.result.iter_mut().zip(verdicts) {
        if let Some(g) = hop.geo.first_mut() {
            g.plausibility = status_name(v.verdict.status).into();
            g.reasons = v.verdict.reasons;
        }
    }
    Ok(())
}

/// Countries and regions a path crosses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathLocality {
    /// Per hop, the country of its first answering address (after [`annotate`]).
    pub hop_countries: Vec<Option<String>>,
    /// Distinct countries in path order.
    pub countries: Vec<String>,
    /// Distinct UN M49 regions (Africa, Americas, …) in path order.
    pub regions: Vec<String>,
    /// Distinct UN M49 sub-regions in path order.
    pub subregions: Vec<String>,
    /// Hops without a known country.
    pub unknown_hops: usize,
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_string());
    }
}

/// Whether every answer of `hop` is an injected (forged) TCP answer.
fn forged_only(hop: &super::model::Hop) -> bool {
    let mut answers = hop.result.iter().filter_map(super::model::Reply::answer);
    let first = answers.next();
    first.is_some_and(|a| a.injected == Some(true)) && answers.all(|a| a.injected == Some(true))
}

/// Locality of an annotated trace (hops that only answered with injected
/// RSTs count as neither a country nor an unknown hop).
pub fn locality(trace: &Trace, m49: &M49) -> PathLocality {
    // A hop that only answered with RSTs injected in the destination's name
    // (a censor) says nothing about where the destination is: no country,
    // and not counted as unknown either.
    let forged: Vec<bool> = trace.result.iter().map(forged_only).collect();
    let hop_countries: Vec<Option<String>> = trace
        .result
        .iter()
        .zip(&forged)
        .map(|(h, f)| {
            if *f {
                None
            } else {
                h.geo.first().and_then(|g| g.country.clone())
            }
        })
        .collect();
    let mut l = PathLocality {
        countries: Vec::new(),
        regions: Vec::new(),
        subregions: Vec::new(),
        unknown_hops: 0,
        hop_countries: hop_countries.clone(),
    };
    for (c, _) in hop_countries.iter().zip(&forged).filter(|(_, f)| !**f) {
        match c.as_deref().and_then(|c| m49.country(c)) {
            Some(country) => {
                push_unique(&mut l.countries, &country.iso2);
                if let Some(r) = &country.region {
                    push_unique(&mut l.regions, &r.name);
                }
                if let Some(r) = &country.subregion {
                    push_unique(&mut l.subregions, &r.name);
                }
            }
            None => l.unknown_hops += 1,
        }
    }
    l
}

/// An application path beside the direct network path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathComparison {
    /// Node → app server.
    pub application: PathLocality,
    /// Node → other node.
    pub direct: PathLocality,
    /// Countries only the application path crosses.
    pub extra_countries: Vec<String>,
    /// Regions only the application path crosses.
    pub extra_regions: Vec<String>,
    /// Does the application path leave every region the direct path stays in
    /// (i.e. cross a region the direct path does not)?
    pub application_leaves_direct_regions: bool,
}

/// Compares an application path with the direct path (both annotated).
pub fn compare(application: &Trace, direct: &Trace, m49: &M49) -> PathComparison {
    let a = locality(application, m49);
    let d = locality(direct, m49);
    let extra_countries: Vec<String> = a
        .countries
        .iter()
        .filter(|c| !d.countries.contains(c))
        .cloned()
        .collect();
    let extra_regions: Vec<String> = a
        .regions
        .iter()
        .filter(|c| !d.regions.contains(c))
        .cloned()
        .collect();
    PathComparison {
        application_leaves_direct_regions: !extra_regions.is_empty(),
        application: a,
        direct: d,
        extra_countries,
        extra_regions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::mmdb::{MmdbRecord, MmdbWriter};
    use crate::paths::model::{Answer, Hop, Proto, Reply, StopReason, TRACE_SCHEMA};
    use std::net::IpAddr;

    fn hop(n: u8, from: Option<&str>, rtt: f64) -> Hop {
        Hop {
            hop: n,
            result: vec![match from {
                Some(f) => Reply::Answer(Answer {
                    from: f.parse().unwrap(),
                    rtt,
                    ttl: 64,
                    size: 56,
                    err: None,
                    flags: None,
                    ittl: None,
                    icmpext: None,
                    injected: None,
                }),
                None => Reply::star(),
            }],
            geo: Vec::new(),
        }
    }

    fn trace(hops: Vec<Hop>) -> Trace {
        let dst: IpAddr = "198.18.9.1".parse().unwrap();
        Trace {
            schema: TRACE_SCHEMA.into(),
            engine: "matador".into(),
            af: 4,
            dst_addr: dst,
            dst_name: None,
            src_addr: "198.18.1.1".parse().unwrap(),
            proto: Proto::Tcp,
            dst_port: Some(443),
            paris_id: 1,
            timestamp: 0,
            endtime: 0,
            size: 40,
            stop_reason: StopReason::Reached,
            packets: 3,
            error: None,
            result: hops,
        }
    }

    #[test]
    fn annotate_and_compare_paths() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = MmdbWriter::new("test-country", "paths test");
        let rec = |c: &str| MmdbRecord {
            country_code: Some(c.into()),
            asn: None,
            org: None,
        };
        w.insert_cidr("198.18.1.0/24", rec("DE")).unwrap();
        w.insert_cidr("198.18.2.0/24", rec("FR")).unwrap();
        w.insert_cidr("198.18.3.0/24", rec("US")).unwrap();
        w.insert_cidr("198.18.4.0/24", rec("DE")).unwrap();
        let path = dir.path().join("c.mmdb");
        w.write(&path).unwrap();
        let db = GeoDb::open(&path, None).unwrap();
        let checker = Checker::shipped();
        let de = Location::Country("DE".into());
        // Application path DE → FR → US (at 2 ms: implausibly fast for the US).
        let mut app = trace(vec![
            hop(1, Some("198.18.1.2"), 0.5),
            hop(2, None, 0.0),
            hop(3, Some("198.18.2.2"), 12.0),
            hop(4, Some("198.18.3.2"), 13.0),
        ]);
        annotate(&mut app, &db, &checker, Some(&de)).unwrap();
        assert_eq!(app.result[0].geo[0].country.as_deref(), Some("DE"));
        assert!(app.result[1].geo.is_empty());
        assert_eq!(app.result[3].geo[0].plausibility, "implausible");
        assert_eq!(app.result[0].geo[0].plausibility, "plausible");
        let mut direct = trace(vec![
            hop(1, Some("198.18.1.2"), 0.5),
            hop(2, Some("198.18.4.2"), 1.0),
        ]);
        annotate(&mut direct, &db, &checker, Some(&de)).unwrap();
        let m49 = M49::shipped();
        let c = compare(&app, &direct, &m49);
        assert_eq!(c.application.countries, vec!["DE", "FR", "US"]);
        assert_eq!(c.application.regions, vec!["Europe", "Americas"]);
        assert_eq!(c.application.unknown_hops, 1);
        assert_eq!(c.direct.countries, vec!["DE"]);
        assert_eq!(c.extra_countries, vec!["FR", "US"]);
        assert_eq!(c.extra_regions, vec!["Americas"]);
        assert!(c.application_leaves_direct_regions);

        // A censor's RST in the US server's name (flagged injected) does not
        // put the US on the path.
        let mut censored = trace(vec![
            hop(1, Some("198.18.1.2"), 0.5),
            hop(2, Some("198.18.3.2"), 0.6),
        ]);
        if let Reply::Answer(a) = &mut censored.result[1].result[0] {
            a.injected = Some(true);
        }
        censored.stop_reason = StopReason::InjectedRst;
        annotate(&mut censored, &db, &checker, Some(&de)).unwrap();
        let l = locality(&censored, &m49);
        assert_eq!(l.countries, vec!["DE"]);
        assert_eq!(l.hop_countries, vec![Some("DE".to_string()), None]);
        assert_eq!(l.unknown_hops, 0);
    }
}
