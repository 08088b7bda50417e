//! Scenario files (YAML): what a campaign measures.
//!
//! A scenario names two phones, the apps under test, the vantage countries
//! with their remote nodes (in failover order), the country pairs, the
//! messages, repetitions and empty baseline runs, timeouts, capture points,
//! geolocation settings and, for the virtual lab, a censor. See
//! `docs/campaign.md` and the examples in `scenarios/`.
//!
//! Loading is strict: unknown keys are errors, and every error names the file,
//! line and column and says what was expected ([`ScenarioError`]). The JSON
//! Schema for editors ([`schema::json_schema`]) is generated from these types
//! with `schemars`, so it cannot drift from what the loader accepts.

pub mod apps;
pub mod data;
pub mod locate;
pub mod schema;
pub mod types;
mod validate;

pub use types::*;

use apps::{AppProfileError, AppProfiles};
use std::path::{Path, PathBuf};

/// Errors loading or validating a scenario. Each names the file and, where
/// known, the line and column (1-based; 0 when unknown).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file (or a file it refers to) could not be read.
    #[error("{}: {source}", file.display())]
    Io {
        /// The path.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// YAML syntax or a value of the wrong shape.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Yaml {
        /// The scenario file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The YAML is well-formed but a value is not acceptable (unknown app,
    /// country without nodes, …).
    #[error("{}:{line}:{column}: {field}: {message}", file.display())]
    Invalid {
        /// The scenario file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The offending key, as a path (`pairs.all[2]`).
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The app profiles named by `app_profiles:` could not be loaded.
    #[error("{0}")]
    Apps(#[from] AppProfileError),
}

/// A scenario together with everything it refers to, ready to plan.
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    /// The parsed scenario.
    pub scenario: Scenario,
    /// The file it came from.
    pub path: PathBuf,
    /// The file's exact bytes (copied into the campaign record).
    pub source: String,
    /// Message texts: inline `messages.texts` followed by the lines of `messages.file`.
    pub texts: Vec<String>,
    /// App profiles: `app_profiles:` when given, else `apps/` of
    /// [`Self::profiles_dir`], else the built-in ones.
    pub profiles: AppProfiles,
    /// The device-profiles folder the defaults come from (`--profiles`, or
    /// found beside the scenario or in a data directory: [`data`]); `None`
    /// when there is none.
    pub profiles_dir: Option<PathBuf>,
}

impl LoadedScenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<LoadedScenario, ScenarioError> {
        Self::load_with(path, None)
    }

    /// [`Self::load`] with the device-profiles folder given (`--profiles`).
    pub fn load_with(
        path: &Path,
        profiles: Option<&Path>,
    ) -> Result<LoadedScenario, ScenarioError> {
        let source = std::fs::read_to_string(path).map_err(|e| ScenarioError::Io {
            file: path.to_path_buf(),
            source: e,
        })?;
        Self::from_str_with(&source, path, profiles)
    }

    /// Parses and validates scenario text; `path` is used in errors and to
    /// resolve relative file names (messages file, app profiles).
    pub fn from_str(source: &str, path: &Path) -> Result<LoadedScenario, ScenarioError> {
        Self::from_str_with(source, path, None)
    }

    /// [`Self::from_str`] with the device-profiles folder given.
    pub fn from_str_with(
        source: &str,
        path: &Path,
        profiles: Option<&Path>,
    ) -> Result<LoadedScenario, ScenarioError> {
        if let Some(d) = profiles
            && !d.is_dir()
        {
            return Err(ScenarioError::Io {
                file: d.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "--profiles: not a folder (expected one holding apps/ and phones/)",
                ),
            });
        }
        let scenario: Scenario = serde_yaml_ng::from_str(source).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let msg = strip_location(&e.to_string());
            // Map keys are reported at the start of their mapping; when the
            // message quotes the bad value, point at the value itself.
            let (line, column) = refine(source, line, column, &msg);
            ScenarioError::Yaml {
                file: path.to_path_buf(),
                line,
                column,
                message: msg,
            }
        })?;
        validate::validate(scenario, source, path, data::profiles_dir(path, profiles))
    }

    /// Phone `id`'s profile file: the scenario's `profile:` (relative to
    /// it), else `phones/<id>.yaml` of [`Self::profiles_dir`].
    pub fn phone_profile(&self, id: &str) -> Result<PathBuf, ScenarioError> {
        let base = self.path.parent().unwrap_or(Path::new("."));
        let p = self.scenario.phones.iter().find(|p| p.id == id);
        if let Some(f) = p.and_then(|p| p.profile.as_ref()) {
            return Ok(base.join(f));
        }
        self.default_file(&format!("phones/{id}.yaml"))
    }

    /// `rel` in the device-profiles folder; an error names where it was
    /// looked for.
    fn default_file(&self, rel: &str) -> Result<PathBuf, ScenarioError> {
        let missing = |file: PathBuf| ScenarioError::Io {
            file,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                data::not_found(&format!("{}/{rel}", data::DEVICE_PROFILES), &self.path),
            ),
        };
        let dir = self
            .profiles_dir
            .clone()
            .ok_or_else(|| missing(PathBuf::from(data::DEVICE_PROFILES).join(rel)))?;
        let p = dir.join(rel);
        if p.exists() { Ok(p) } else { Err(missing(p)) }
    }
}

/// serde_yaml_ng appends " at line L column C" to its messages; the error
/// already carries the location in front, so drop the duplicate.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// Finds `found "<value>"` of an error message in the source, from the
/// reported line on (a few lines at most); else keeps the reported location.
fn refine(source: &str, line: usize, column: usize, msg: &str) -> (usize, usize) {
    let Some(v) = msg
        .rsplit_once("found \"")
        .and_then(|(_, r)| r.split_once('"'))
        .map(|(v, _)| v)
        .filter(|v| !v.is_empty())
    else {
        return (line, column);
    };
    for (i, l) in source
        .lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .take(50)
    {
        let mut from = if i + 1 == line {
            column.saturating_sub(1)
        } else {
            0
        };
        while let Some(p) = l.get(from..).and_then(|r| r.find(v)).map(|p| p + from) {
            let before = l[..p].chars().last();
            let after = l[p + v.len()..].chars().next();
            let edge =
                |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_'));
            if edge(before) && edge(after) {
                return (i + 1, p + 1);
            }
            from = p + v.len();
        }
    }
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_suffix_is_stripped() {
        assert_eq!(
            strip_location("unknown field `x`, expected `a` at line 3 column 5"),
            "unknown field `x`, expected `a`"
        );
        assert_eq!(strip_location("plain"), "plain");
    }
}
