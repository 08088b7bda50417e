//! Locality of a path (the seed's Tables 2 and 3).
//!
//! A path is the list of its hops' countries (ISO alpha-2, `None` where the
//! hop did not answer or has no geolocation). Definitions (docs/geo.md):
//! - a path **leaves a region** if any geolocated hop lies outside it;
//! - a path is **accessible to an interest group** if any geolocated hop lies
//!   in a member country.
//!
//! Hops without a country, or with a code outside the M49 table, are counted
//! as unknown and do not decide either answer; with no known hop at all the
//! answer is `None` (cannot tell).

use super::GeoError;
use super::groups::Group;
use super::m49::M49;

/// Answer of a locality question about one path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalityVerdict {
    /// `Some(true/false)`, or `None` when no hop has a known country.
    pub value: Option<bool>,
    /// Indices of the hops that decided it (outside the region / in the group).
    pub hops: Vec<usize>,
    /// Hops whose country is known.
    pub known: usize,
    /// Hops whose country is unknown.
    pub unknown: usize,
}

fn verdict(decisive: Vec<usize>, known: usize, unknown: usize) -> LocalityVerdict {
    let value = if !decisive.is_empty() {
        Some(true)
    } else if known == 0 {
        None
    } else {
        Some(false)
    };
    LocalityVerdict {
        value,
        hops: decisive,
        known,
        unknown,
    }
}

/// Does the path leave the M49 area `area` (name or code, any level)?
pub fn leaves_region(
    hops: &[Option<&str>],
    m49: &M49,
    area: &str,
) -> Result<LocalityVerdict, GeoError> {
    let code = m49.area(area)?.0.code.clone();
    let (mut known, mut unknown, mut outside) = (0, 0, Vec::new());
    for (i, h) in hops.iter().enumerate() {
        match h.and_then(|c| m49.country(c)) {
            Some(c) => {
                known += 1;
                if !c.in_area(&code) {
                    outside.push(i);
                }
            }
            None => unknown += 1,
        }
    }
    Ok(verdict(outside, known, unknown))
}

/// Is the path accessible to `group` (some hop in a member country)?
pub fn accessible_to_group(hops: &[Option<&str>], m49: &M49, group: &Group) -> LocalityVerdict {
    let (mut known, mut unknown, mut inside) = (0, 0, Vec::new());
    for (i, h) in hops.iter().enumerate() {
        match h.and_then(|c| m49.country(c)) {
            Some(c) => {
                known += 1;
                if group.contains(&c.iso2) {
                    inside.push(i);
                }
            }
            None => unknown += 1,
        }
    }
    verdict(inside, known, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::groups::GroupSet;

    #[test]
    fn region_and_group() {
        let m = M49::shipped();
        let path = [Some("AR"), None, Some("US"), Some("CH")];
        let v = leaves_region(&path, &m, "South America").unwrap();
        assert_eq!(v.value, Some(true));
        assert_eq!(v.hops, vec![2, 3]);
        assert_eq!((v.known, v.unknown), (3, 1));
        let v = leaves_region(&path[..2], &m, "Americas").unwrap();
        assert_eq!(v.value, Some(false));
        assert_eq!(leaves_region(&[None], &m, "Europe").unwrap().value, None);
        assert!(leaves_region(&path, &m, "Atlantis").is_err());

        let g = GroupSet::preset("pam2016").unwrap();
        let eu = g.group("eu").unwrap();
        // The seed's anomaly: US to Switzerland without touching the EU.
        assert_eq!(accessible_to_group(&path, &m, eu).value, Some(false));
        let fe = g.group("five_eyes").unwrap();
        assert_eq!(accessible_to_group(&path, &m, fe).hops, vec![2]);
        // pam2016's Five Eyes has no Australia; current's has.
        let au = [Some("AU")];
        assert_eq!(accessible_to_group(&au, &m, fe).value, Some(false));
        let cur = GroupSet::preset("current").unwrap();
        let fe = cur.group("five_eyes").unwrap();
        assert_eq!(accessible_to_group(&au, &m, fe).value, Some(true));
    }
}
