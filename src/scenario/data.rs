//! Where the files a scenario uses by default come from — never the working
//! directory, so `matador run /any/where/x.yaml` works from any directory.
//!
//! A file the scenario names (`phones[].profile`, `app_profiles`,
//! `messages.file`, `lab.topology`, `geo.*`) is relative to the scenario
//! file. What it leaves to the default — `device-profiles/phones/<id>.yaml`,
//! `device-profiles/apps/`, the demo lab `lab/demo.yaml` — is looked up as
//! `<rel>` in, first match wins:
//!
//! 1. for device profiles, the folder given with `--profiles DIR` (it holds
//!    `apps/` and `phones/`, like `device-profiles/`);
//! 2. the scenario file's folder and each folder above it (a project laid
//!    out like this repository: `scenarios/x.yaml` beside `device-profiles/`);
//! 3. the installed data directories ([`data_dirs`]).

use std::path::{Path, PathBuf};

/// The default device-profiles folder, relative to a data directory.
pub const DEVICE_PROFILES: &str = "device-profiles";

/// The default virtual-lab topology, relative to a data directory.
pub const DEMO_LAB: &str = "lab/demo.yaml";

/// The installed data directories, in search order: `$MATADOR_DATA_DIR`,
/// `<executable's folder>/../share/matador` (an installed binary), and the
/// source tree this binary was built from (a `cargo build` in a checkout).
pub fn data_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("MATADOR_DATA_DIR").filter(|d| !d.is_empty()) {
        v.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        v.push(bin.join("../share/matador"));
    }
    v.push(crate::source_dir().to_path_buf());
    v
}

/// The folders searched for `rel` on behalf of `scenario` (rules 2 and 3
/// of the module documentation), in order.
pub fn search_path(scenario: &Path) -> Vec<PathBuf> {
    let abs = std::path::absolute(scenario).unwrap_or_else(|_| scenario.to_path_buf());
    let mut v: Vec<PathBuf> = abs.ancestors().skip(1).map(Path::to_path_buf).collect();
    v.extend(data_dirs());
    v
}

/// `rel` (a file or folder) in the first folder of [`search_path`] that
/// has it.
pub fn find(scenario: &Path, rel: &str) -> Option<PathBuf> {
    search_path(scenario)
        .into_iter()
        .map(|d| d.join(rel))
        .find(|p| p.exists())
}

/// The device-profiles folder for `scenario`: `explicit` (`--profiles`)
/// when given, else the first `device-profiles/` found by [`find`].
pub fn profiles_dir(scenario: &Path, explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(d) => Some(d.to_path_buf()),
        None => find(scenario, DEVICE_PROFILES),
    }
}

/// What a missing default file says: where it was looked for.
pub fn not_found(rel: &str, scenario: &Path) -> String {
    let dirs: Vec<String> = search_path(scenario)
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    format!(
        "{rel} not found beside the scenario {} or above it, nor in the data \
         directories (searched: {}); name it in the scenario, give --profiles DIR \
         or set MATADOR_DATA_DIR",
        scenario.display(),
        dirs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_folder_and_its_parents_come_before_the_data_dirs() {
        let d = tempfile::tempdir().unwrap();
        let proj = d.path().join("proj");
        std::fs::create_dir_all(proj.join("scenarios/deep")).unwrap();
        std::fs::create_dir_all(proj.join("device-profiles/phones")).unwrap();
        let sc = proj.join("scenarios/deep/x.yaml");
        assert_eq!(profiles_dir(&sc, None), Some(proj.join("device-profiles")));
        // Closer wins.
        std::fs::create_dir_all(proj.join("scenarios/device-profiles")).unwrap();
        assert_eq!(
            profiles_dir(&sc, None),
            Some(proj.join("scenarios/device-profiles"))
        );
        // --profiles wins over everything.
        let mine = d.path().join("mine");
        assert_eq!(profiles_dir(&sc, Some(&mine)), Some(mine));
    }

    #[test]
    fn a_relative_scenario_path_is_taken_from_where_it_is() {
        // The repository's scenarios/ sits beside its device-profiles/.
        let repo = crate::source_dir();
        let sc = repo.join("scenarios/lab-demo.yaml");
        assert_eq!(find(&sc, DEMO_LAB), Some(repo.join(DEMO_LAB)));
        assert_eq!(profiles_dir(&sc, None), Some(repo.join(DEVICE_PROFILES)));
    }

    #[test]
    fn the_error_names_the_searched_folders() {
        let m = not_found("device-profiles/phones/x.yaml", Path::new("/a/b/s.yaml"));
        assert!(m.contains("/a/b"), "{m}");
        assert!(m.contains("--profiles"), "{m}");
    }
}
