//! Plausibility of geolocations: the speed of light in fibre.
//!
//! Light in fibre covers about 200 km per millisecond (2/3 c), so a reply
//! after `rtt` ms comes from at most `rtt / 2 · 200` km away. Countries are
//! represented by their tzdata reference points (`src/geo/data/
//! country_points.csv`, from `zone.tab`, public domain: capitals or largest
//! cities, several for large countries). The distance between two countries
//! is bounded from below by the shortest distance between their points minus
//! a slack per country for the part of the country away from its points
//! (default 2,000 km; China 2,600 km, India 2,200 km, Algeria 2,100 km). Coordinates given as `LAT,LON` need no
//! slack. Every bound is conservative: an "implausible" verdict means no
//! placement inside the two countries fits the RTT.
//!
//! Hop sequences: hop B is reached through hop A, so (with symmetric return
//! paths) `rtt_B − rtt_A ≥ 2 · distance(A, B) / 200`. A country change whose
//! RTT grows less than that (minus a jitter tolerance, default 10 ms, because
//! router ICMP replies are slow-pathed) is flagged.

use super::GeoError;
use super::asn_csv::split_csv_line;
use std::collections::HashMap;

/// Kilometres light travels in fibre per millisecond (2/3 c ≈ 199.9).
pub const FIBRE_KM_PER_MS: f64 = 200.0;
/// Default slack per country side, km.
pub const DEFAULT_SLACK_KM: f64 = 2000.0;
/// Default jitter tolerance for hop-to-hop RTT differences, ms.
pub const DEFAULT_JITTER_MS: f64 = 10.0;
/// Countries whose extent from their reference points exceeds or nears the
/// default (farthest border point: China's Mohe 2,480 km from Shanghai,
/// India's western Gujarat 2,065 km from Kolkata, Algeria's south 1,990 km
/// from Algiers).
const SLACK_OVERRIDES: [(&str, f64); 3] = [("CN", 2600.0), ("IN", 2200.0), ("DZ", 2100.0)];
/// Shipped reference points.
pub const POINTS_CSV: &str = include_str!("data/country_points.csv");
const EARTH_RADIUS_KM: f64 = 6371.0;

/// A vantage point or target location.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Location {
    /// Somewhere in a country (ISO alpha-2).
    Country(String),
    /// An exact position in degrees.
    Coord {
        /// Latitude.
        lat: f64,
        /// Longitude.
        lon: f64,
    },
}

impl Location {
    /// Parses `DE` or `52.52,13.40`.
    pub fn parse(s: &str) -> Result<Self, GeoError> {
        let t = s.trim();
        if let Some((a, b)) = t.split_once(',') {
            let lat: f64 = a
                .trim()
                .parse()
                .map_err(|_| GeoError::BadLocation(s.into()))?;
            let lon: f64 = b
                .trim()
                .parse()
                .map_err(|_| GeoError::BadLocation(s.into()))?;
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(GeoError::BadLocation(s.into()));
            }
            return Ok(Location::Coord { lat, lon });
        }
        if t.len() == 2 && t.chars().all(|c| c.is_ascii_alphabetic()) {
            return Ok(Location::Country(t.to_ascii_uppercase()));
        }
        Err(GeoError::BadLocation(s.into()))
    }

    fn label(&self) -> String {
        match self {
            Location::Country(c) => c.clone(),
            Location::Coord { lat, lon } => format!("({lat:.2},{lon:.2})"),
        }
    }
}

/// Outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Consistent with the measurement.
    Plausible,
    /// Violates the speed of light in fibre.
    Implausible,
    /// Not enough data (unknown country, no RTT).
    Unknown,
}

/// A verdict with its reasons.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// Outcome.
    pub status: Status,
    /// Human-readable reasons (why it is implausible / why unknown).
    pub reasons: Vec<String>,
    /// Lower bound of the distance used, km.
    pub min_distance_km: Option<f64>,
    /// Largest distance the RTT allows, km.
    pub max_reach_km: Option<f64>,
}

impl Verdict {
    fn unknown(reason: String) -> Self {
        Verdict {
            status: Status::Unknown,
            reasons: vec![reason],
            min_distance_km: None,
            max_reach_km: None,
        }
    }
}

/// One traceroute hop as the checker sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HopObs {
    /// Geolocated country (alpha-2), if any.
    pub country: Option<String>,
    /// Minimum RTT of the hop, ms, if it answered.
    pub rtt_ms: Option<f64>,
}

/// Verdict for one hop of a path.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HopVerdict {
    /// Index of the hop in the input.
    pub index: usize,
    /// Verdict (vantage check and jump check combined).
    pub verdict: Verdict,
}

/// Great-circle distance in km.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The plausibility checker: reference points plus tolerances.
#[derive(Debug, Clone)]
pub struct Checker {
    points: HashMap<String, Vec<(f64, f64)>>,
    /// Slack per country side, km.
    pub slack_km: f64,
    /// Tolerance on hop-to-hop RTT differences, ms.
    pub jitter_ms: f64,
}

impl Checker {
    /// The checker with the shipped points and default tolerances.
    pub fn shipped() -> Self {
        let mut points: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
        for line in POINTS_CSV.lines().filter(|l| !l.starts_with('#')).skip(1) {
            if let Ok(f) = split_csv_line(line)
                && f.len() >= 3
                && let (Ok(lat), Ok(lon)) = (f[1].parse::<f64>(), f[2].parse::<f64>())
            {
                points.entry(f[0].clone()).or_default().push((lat, lon));
            }
        }
        Checker {
            points,
            slack_km: DEFAULT_SLACK_KM,
            jitter_ms: DEFAULT_JITTER_MS,
        }
    }

    fn slack(&self, country: &str) -> f64 {
        SLACK_OVERRIDES
            .iter()
            .find(|(c, _)| *c == country)
            .map_or(self.slack_km, |(_, s)| s.max(self.slack_km))
    }

    fn points_of(&self, l: &Location) -> Option<(Vec<(f64, f64)>, f64)> {
        match l {
            Location::Coord { lat, lon } => Some((vec![(*lat, *lon)], 0.0)),
            Location::Country(c) => {
                let c = c.to_ascii_uppercase();
                self.points.get(&c).map(|p| (p.clone(), self.slack(&c)))
            }
        }
    }

    /// Lower bound of the distance between two locations, km (`None` if a
    /// country has no reference point).
    pub fn min_distance_km(&self, a: &Location, b: &Location) -> Option<f64> {
        if let (Location::Country(x), Location::Country(y)) = (a, b)
            && x.eq_ignore_ascii_case(y)
        {
            return Some(0.0);
        }
        let (pa, sa) = self.points_of(a)?;
        let (pb, sb) = self.points_of(b)?;
        let d = pa
            .iter()
            .flat_map(|x| pb.iter().map(move |y| haversine_km(*x, *y)))
            .fold(f64::INFINITY, f64::min);
        Some((d - sa - sb).max(0.0))
    }

    /// Is `country` reachable from `vantage` within `rtt_ms`?
    pub fn check_rtt(&self, vantage: &Location, country: &str, rtt_ms: f64) -> Verdict {
        if !rtt_ms.is_finite() || rtt_ms < 0.0 {
            return Verdict::unknown(format!("invalid RTT {rtt_ms} ms"));
        }
        let target = Location::Country(country.to_ascii_uppercase());
        let Some(d) = self.min_distance_km(vantage, &target) else {
            return Verdict::unknown(format!(
                "no reference point for {} or {}",
                vantage.label(),
                target.label()
            ));
        };
        let reach = rtt_ms / 2.0 * FIBRE_KM_PER_MS;
        let mut v = Verdict {
            status: Status::Plausible,
            reasons: Vec::new(),
            min_distance_km: Some(d),
            max_reach_km: Some(reach),
        };
        if d > reach {
            v.status = Status::Implausible;
            v.reasons.push(format!(
                "{} is at least {:.0} km from {}, but an RTT of {:.1} ms allows at most {:.0} km in fibre (needs ≥ {:.1} ms)",
                target.label(),
                d,
                vantage.label(),
                rtt_ms,
                reach,
                2.0 * d / FIBRE_KM_PER_MS
            ));
        }
        v
    }

    /// Checks every hop of a path: against the vantage point (if given) and
    /// against the previous hop with a country and an RTT (country jumps).
    pub fn check_path(&self, vantage: Option<&Location>, hops: &[HopObs]) -> Vec<HopVerdict> {
        let mut out = Vec::with_capacity(hops.len());
        let mut prev: Option<(usize, &str, f64)> = None;
        for (i, h) in hops.iter().enumerate() {
            let (Some(c), Some(rtt)) = (h.country.as_deref(), h.rtt_ms) else {
                out.push(HopVerdict {
                    index: i,
                    verdict: Verdict::unknown("hop has no country or no RTT".into()),
                });
                continue;
            };
            let mut v = match vantage {
                Some(vp) => self.check_rtt(vp, c, rtt),
                None => Verdict {
                    status: Status::Plausible,
                    reasons: Vec::new(),
                    min_distance_km: None,
                    max_reach_km: None,
                },
            };
            if let Some((j, pc, prtt)) = prev
                && !pc.eq_ignore_ascii_case(c)
                && let Some(d) = self.min_distance_km(
                    &Location::Country(pc.to_string()),
                    &Location::Country(c.to_string()),
                )
            {
                let needed = 2.0 * d / FIBRE_KM_PER_MS;
                let grew = rtt - prtt;
                if grew + self.jitter_ms < needed {
                    v.status = Status::Implausible;
                    v.reasons.push(format!(
                        "jump {pc} (hop {}) → {c} (hop {}) spans at least {d:.0} km and needs the RTT to grow by ≥ {needed:.1} ms, but it changed by {grew:+.1} ms",
                        j + 1,
                        i + 1
                    ));
                }
            }
            prev = Some((i, c, rtt));
            out.push(HopVerdict {
                index: i,
                verdict: v,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_rtt() {
        let c = Checker::shipped();
        // Berlin–Paris ≈ 878 km.
        let d = haversine_km((52.52, 13.405), (48.8566, 2.3522));
        assert!((d - 878.0).abs() < 10.0, "{d}");
        let de = Location::parse("de").unwrap();
        // Neighbours are never implausible at any RTT.
        assert_eq!(c.check_rtt(&de, "FR", 1.0).status, Status::Plausible);
        // Australia from Germany in 20 ms is impossible.
        let v = c.check_rtt(&de, "AU", 20.0);
        assert_eq!(v.status, Status::Implausible, "{v:?}");
        assert!(v.reasons[0].contains("AU"));
        assert_eq!(c.check_rtt(&de, "AU", 300.0).status, Status::Plausible);
        assert_eq!(c.check_rtt(&de, "ZZ", 3.0).status, Status::Unknown);
        assert!(Location::parse("52.5,13.4").is_ok());
        assert!(Location::parse("95,0").is_err());
        assert!(Location::parse("Germany").is_err());
    }

    #[test]
    fn hop_jumps() {
        let c = Checker::shipped();
        let hop = |cc: &str, rtt: f64| HopObs {
            country: Some(cc.into()),
            rtt_ms: Some(rtt),
        };
        // The seed's listing: Argentina, Miami (US) at 131 ms, Zurich at 278 ms: fine.
        let ok = c.check_path(
            Some(&Location::Country("AR".into())),
            &[hop("AR", 1.4), hop("US", 130.9), hop("CH", 278.0)],
        );
        assert!(
            ok.iter().all(|h| h.verdict.status == Status::Plausible),
            "{ok:?}"
        );
        // DE → JP with the RTT unchanged is not (US would not do: Alaska is near Japan).
        let bad = c.check_path(None, &[hop("DE", 80.0), hop("JP", 81.0)]);
        assert_eq!(bad[1].verdict.status, Status::Implausible);
        assert!(bad[1].verdict.reasons[0].contains("jump DE (hop 1) → JP (hop 2)"));
        let unk = c.check_path(
            None,
            &[HopObs {
                country: None,
                rtt_ms: Some(3.0),
            }],
        );
        assert_eq!(unk[0].verdict.status, Status::Unknown);
    }
}
