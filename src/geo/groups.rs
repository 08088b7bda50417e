//! Interest groups: named sets of countries (Five Eyes, EU, …).
//!
//! Presets live in `src/geo/data/groups.yaml` (compiled in): `current`
//! (membership as of 2026) and `pam2016` (exactly the seed paper's lists,
//! including its omission of Australia from Five Eyes and the UK in the EU).
//! A custom YAML file has the form
//!
//! ```yaml
//! extends: current        # optional: start from a preset
//! groups:
//!   - id: nordics
//!     name: Nordic countries
//!     members: [DK, FI, IS, NO, SE]
//! ```
//!
//! A custom group with the id of an extended one replaces it.

use super::GeoError;
use super::m49::M49;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The shipped presets.
pub const GROUPS_YAML: &str = include_str!("data/groups.yaml");

/// Names of the shipped presets.
pub const PRESETS: [&str; 2] = ["current", "pam2016"];

/// One interest group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Short identifier (`five_eyes`).
    pub id: String,
    /// Display name (`Five Eyes`).
    pub name: String,
    /// ISO 3166-1 alpha-2 member codes.
    pub members: Vec<String>,
}

impl Group {
    /// Whether `country` (alpha-2, any case) is a member.
    pub fn contains(&self, country: &str) -> bool {
        self.members.iter().any(|m| m.eq_ignore_ascii_case(country))
    }
}

/// A resolved set of groups, in definition order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupSet {
    /// Preset name or file the set came from.
    pub source: String,
    /// The groups.
    pub groups: Vec<Group>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetFile {
    presets: BTreeMap<String, Vec<Group>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomFile {
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    groups: Vec<Group>,
}

impl GroupSet {
    /// A shipped preset by name (`current`, `pam2016`).
    pub fn preset(name: &str) -> Result<Self, GeoError> {
        let bad = |message: String| GeoError::Groups {
            source_name: "src/geo/data/groups.yaml".into(),
            message,
        };
        let file: PresetFile =
            serde_yaml_ng::from_str(GROUPS_YAML).map_err(|e| bad(e.to_string()))?;
        let groups = file
            .presets
            .get(name)
            .cloned()
            .ok_or_else(|| GeoError::Groups {
                source_name: name.to_string(),
                message: format!(
                    "no such interest-group preset (presets: {}; or give a YAML file)",
                    PRESETS.join(", ")
                ),
            })?;
        let set = GroupSet {
            source: name.to_string(),
            groups,
        };
        set.validate()?;
        Ok(set)
    }

    /// Parses a custom groups YAML text (`source` names it in errors).
    pub fn from_yaml(source: &str, text: &str) -> Result<Self, GeoError> {
        let bad = |message: String| GeoError::Groups {
            source_name: source.to_string(),
            message,
        };
        let file: CustomFile = serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut groups = match &file.extends {
            Some(p) => Self::preset(p)?.groups,
            None => Vec::new(),
        };
        for g in file.groups {
            match groups.iter_mut().find(|x| x.id == g.id) {
                Some(x) => *x = g,
                None => groups.push(g),
            }
        }
        if groups.is_empty() {
            return Err(bad(
                "defines no groups (expected `groups:` and/or `extends:`)".into(),
            ));
        }
        let set = GroupSet {
            source: source.to_string(),
            groups,
        };
        set.validate()?;
        Ok(set)
    }

    /// Resolves `--groups`: a preset name, else a YAML file path.
    pub fn resolve(spec: &str) -> Result<Self, GeoError> {
        if PRESETS.contains(&spec) {
            return Self::preset(spec);
        }
        let path = Path::new(spec);
        if !path.exists() {
            return Err(GeoError::Groups {
                source_name: spec.to_string(),
                message: format!(
                    "neither a preset ({}) nor an existing YAML file",
                    PRESETS.join(", ")
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| GeoError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(spec, &text)
    }

    /// Checks ids are unique and non-empty and members are known countries.
    fn validate(&self) -> Result<(), GeoError> {
        let m49 = M49::shipped();
        let bad = |message: String| GeoError::Groups {
            source_name: self.source.clone(),
            message,
        };
        for (i, g) in self.groups.iter().enumerate() {
            if g.id.trim().is_empty() {
                return Err(bad(format!("group #{} has an empty id", i + 1)));
            }
            if self.groups[..i].iter().any(|x| x.id == g.id) {
                return Err(bad(format!("group id {:?} defined twice", g.id)));
            }
            if g.members.is_empty() {
                return Err(bad(format!("group {:?} has no members", g.id)));
            }
            for m in &g.members {
                if m.len() != 2 || m49.country(m).is_none() {
                    return Err(bad(format!(
                        "group {:?}: {m:?} is not an ISO 3166-1 alpha-2 code of the M49 table",
                        g.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The group with this id.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id || g.name == id)
    }

    /// Ids of the groups `country` belongs to.
    pub fn groups_of(&self, country: &str) -> Vec<&str> {
        self.groups
            .iter()
            .filter(|g| g.contains(country))
            .map(|g| g.id.as_str())
            .collect()
    }
}
