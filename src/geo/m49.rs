//! UN M49 geoscheme: country → region, sub-region, intermediate region.
//!
//! The table is `src/geo/data/m49.csv`, generated from the UNSD M49 table
//! (PDDL copy in `shared/data/m49/`, see the file's header) and compiled in.
//! Antarctica has no region; Taiwan is in Eastern Asia, as in that copy.

use super::GeoError;
use super::asn_csv::split_csv_line;
use std::collections::HashMap;

/// The shipped table (CSV with `#` comment lines).
pub const M49_CSV: &str = include_str!("data/m49.csv");

/// One M49 area (region, sub-region or intermediate region).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Area {
    /// Three-digit M49 code, e.g. `"150"`.
    pub code: String,
    /// English name, e.g. `"Europe"`.
    pub name: String,
}

/// Level of an M49 area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Region (Africa, Americas, Asia, Europe, Oceania).
    Region,
    /// Sub-region (e.g. Northern America, Western Europe).
    SubRegion,
    /// Intermediate region (e.g. South America, Caribbean).
    Intermediate,
}

/// A country or area with its M49 classification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code.
    pub iso2: String,
    /// ISO 3166-1 alpha-3 code.
    pub iso3: String,
    /// M49 country code.
    pub m49: String,
    /// English name as in the UNSD table.
    pub name: String,
    /// Region (none for Antarctica).
    pub region: Option<Area>,
    /// Sub-region.
    pub subregion: Option<Area>,
    /// Intermediate region (only some sub-regions have them).
    pub intermediate: Option<Area>,
}

impl Country {
    /// Whether the country lies in the area with this code (at any level).
    pub fn in_area(&self, code: &str) -> bool {
        [&self.region, &self.subregion, &self.intermediate]
            .iter()
            .any(|a| a.as_ref().is_some_and(|a| a.code == code))
    }
}

/// The M49 table, indexed by ISO alpha-2 code.
#[derive(Debug, Clone)]
pub struct M49 {
    countries: Vec<Country>,
    by_iso2: HashMap<String, usize>,
    areas: Vec<(Area, Level)>,
}

impl M49 {
    /// The shipped table.
    pub fn shipped() -> Self {
        // The shipped table is checked by tests; a failure here is a build
        // defect, but stay panic-free and fall back to an empty table.
        Self::parse("src/geo/data/m49.csv", M49_CSV).unwrap_or_else(|_| M49 {
            countries: Vec::new(),
            by_iso2: HashMap::new(),
            areas: Vec::new(),
        })
    }

    /// Parses a table in the shipped format (`source` names it in errors).
    pub fn parse(source: &str, text: &str) -> Result<Self, GeoError> {
        let mut countries = Vec::new();
        let mut header_seen = false;
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| GeoError::BadLine {
                path: source.into(),
                line: i + 1,
                message,
            };
            let f = split_csv_line(line).map_err(bad)?;
            if !header_seen {
                header_seen = true;
                if f.first().map(String::as_str) != Some("iso2") {
                    return Err(bad("missing header iso2,iso3,m49,…".into()));
                }
                continue;
            }
            if f.len() != 10 {
                return Err(bad(format!("expected 10 fields, got {}", f.len())));
            }
            let area = |c: &str, n: &str| {
                (!c.is_empty()).then(|| Area {
                    code: c.to_string(),
                    name: n.to_string(),
                })
            };
            countries.push(Country {
                iso2: f[0].clone(),
                iso3: f[1].clone(),
                m49: f[2].clone(),
                name: f[3].clone(),
                region: area(&f[4], &f[5]),
                subregion: area(&f[6], &f[7]),
                intermediate: area(&f[8], &f[9]),
            });
        }
        Ok(Self::from_countries(countries))
    }

    fn from_countries(countries: Vec<Country>) -> Self {
        let mut by_iso2 = HashMap::new();
        let mut areas: Vec<(Area, Level)> = Vec::new();
        for (i, c) in countries.iter().enumerate() {
            by_iso2.insert(c.iso2.clone(), i);
            for (a, l) in [
                (&c.region, Level::Region),
                (&c.subregion, Level::SubRegion),
                (&c.intermediate, Level::Intermediate),
            ] {
                if let Some(a) = a
                    && !areas.iter().any(|(x, _)| x.code == a.code)
                {
                    areas.push((a.clone(), l));
                }
            }
        }
        M49 {
            countries,
            by_iso2,
            areas,
        }
    }

    /// All countries and areas, in table order.
    pub fn countries(&self) -> &[Country] {
        &self.countries
    }

    /// The country with this ISO alpha-2 code (case-insensitive).
    pub fn country(&self, iso2: &str) -> Option<&Country> {
        let key = iso2.trim().to_ascii_uppercase();
        self.by_iso2.get(&key).map(|&i| &self.countries[i])
    }

    /// All regions, sub-regions and intermediate regions.
    pub fn areas(&self) -> &[(Area, Level)] {
        &self.areas
    }

    /// Resolves an area by M49 code or English name (case-insensitive, at
    /// any level), e.g. `"Europe"`, `"150"`, `"Northern America"`,
    /// `"South America"`.
    pub fn area(&self, name_or_code: &str) -> Result<&(Area, Level), GeoError> {
        let q = name_or_code.trim();
        self.areas
            .iter()
            .find(|(a, _)| a.code == q || a.name.eq_ignore_ascii_case(q))
            .ok_or_else(|| GeoError::UnknownRegion(q.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses() {
        let m = M49::parse("m49.csv", M49_CSV).unwrap();
        assert_eq!(m.countries().len(), 249);
        let de = m.country("de").unwrap();
        assert_eq!(de.region.as_ref().unwrap().name, "Europe");
        assert_eq!(de.subregion.as_ref().unwrap().name, "Western Europe");
        let ar = m.country("AR").unwrap();
        assert_eq!(ar.intermediate.as_ref().unwrap().name, "South America");
        assert!(ar.in_area("019"));
        assert!(m.country("AQ").unwrap().region.is_none());
        assert_eq!(m.area("americas").unwrap().0.code, "019");
        assert_eq!(m.area("021").unwrap().0.name, "Northern America");
        assert!(m.area("Central Europe").is_err());
    }
}
