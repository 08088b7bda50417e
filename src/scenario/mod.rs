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
    /// App profiles: the built-in ones, or `app_profiles:` when given.
    pub profiles: AppProfiles,
}

impl LoadedScenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<LoadedScenario, ScenarioError> {
        let source = std::fs::read_to_string(path).map_err(|e| ScenarioError::Io {
            file: path.to_path_buf(),
            source: e,
        })?;
        Self::from_str(&source, path)
    }

    /// Parses and validates scenario text; `path` is used in errors and to
    /// resolve relative file names (messages file, app profiles).
    pub fn from_str(source: &str, path: &Path) -> Result<LoadedScenario, ScenarioError> {
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
        validate::validate(scenario, source, path)
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
