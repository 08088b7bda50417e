//! The campaign's one world builder on a real-lab scenario (no network
//! needed: nothing connects before the first measurement): paths and
//! probes go through the node agents as in the virtual lab, and a step the
//! lab cannot run is refused before anything starts — by `scenario check`
//! or by the builder — never skipped while the measurement counts as
//! complete.

use matador::campaign::world::World;
use matador::net::state::StateFile;
use matador::scenario::LoadedScenario;
use std::path::{Path, PathBuf};

/// The real-lab fixture (tests/fixtures/reallab), with its phone profiles
/// made absolute, two countries and `steps` as given.
fn scenario(dir: &Path, steps: &str, node_extra: &str) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/tests/fixtures/reallab/scenario.yaml"))
        .unwrap()
        .replace(
            "../../../device-profiles/phones/",
            &format!("{root}/device-profiles/phones/"),
        )
        .replace("DE: [de-1]", "DE: [de-1]\n  BR: [br-1]")
        .replace("all: [DE]\n  include_same: true", "all: [DE, BR]")
        .replace(
            "nodes:\n",
            &format!(
                "nodes:\n  br-1: {{host: 198.51.100.7, {node_extra}table: 101, tunnel_if: wg-br-1, tunnel_peer: 198.18.99.6}}\n"
            ),
        );
    let p = dir.join("scenario.yaml");
    std::fs::write(&p, format!("{text}{steps}")).unwrap();
    p
}

const KEYS: &str = "identity: keys/lab, known_hosts: keys/known_hosts, ";

#[test]
fn real_lab_paths_and_probes_go_through_the_agents() {
    let tmp = tempfile::tempdir().unwrap();
    let p = scenario(tmp.path(), "steps: {paths: true, probes: true}\n", KEYS);
    let ls = LoadedScenario::load(&p).unwrap();
    let state =
        StateFile::create(&tmp.path().join("state.json"), "t", serde_json::json!({})).unwrap();
    let world = World::from_scenario(&ls, state).unwrap();
    assert!(!world.lab_only, "a real lab has no lab address guard");
    assert_eq!(
        world.nodes["br-1"].addr,
        Some("198.51.100.7".parse().unwrap())
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (env, agents) = world.build(&ls, rt.handle()).unwrap();
    assert_eq!(agents.keys().collect::<Vec<_>>(), ["br-1", "de-1"]);
    assert_eq!(
        agents["de-1"].ssh.known_hosts,
        tmp.path().join("keys/known_hosts")
    );
    env.check_steps(&ls.scenario.steps).unwrap();
    let paths = env.paths.expect("paths step in a real lab");
    let probes = env.probes.expect("probes step in a real lab");
    assert_eq!(paths.via(), "agent");
    assert_eq!(probes.via(), "agent");
}

#[test]
fn steps_off_build_no_engine_and_are_not_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // No SSH keys: fine while nothing needs the agents.
    let p = scenario(
        tmp.path(),
        "capture: {points: [router]}\nsteps: {paths: false}\n",
        "",
    );
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("identity: keys/lab, known_hosts: keys/known_hosts, ", "");
    std::fs::write(&p, text).unwrap();
    let ls = LoadedScenario::load(&p).unwrap();
    let state =
        StateFile::create(&tmp.path().join("state.json"), "t", serde_json::json!({})).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (env, agents) = World::from_scenario(&ls, state)
        .unwrap()
        .build(&ls, rt.handle())
        .unwrap();
    assert!(agents.is_empty());
    assert!(env.paths.is_none() && env.probes.is_none());
    env.check_steps(&ls.scenario.steps).unwrap();
}

#[test]
fn steps_the_lab_cannot_run_are_refused_at_scenario_check() {
    let tmp = tempfile::tempdir().unwrap();
    // br-1 has no SSH keys: its traces could not be taken.
    let p = scenario(tmp.path(), "steps: {paths: true}\n", "");
    let e = LoadedScenario::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("steps.paths") && e.contains("br-1") && e.contains("identity"),
        "{e}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_matador"))
        .args(["scenario", "check"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("steps.paths") && err.contains("br-1"), "{err}");
    // Probes need a control country.
    let one = tmp.path().join("one.yaml");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("  BR: [br-1]\n", "")
        .lines()
        .filter(|l| !l.starts_with("  br-1:"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("all: [DE, BR]", "all: [DE]\n  include_same: true")
        .replace("steps: {paths: true}", "steps: {probes: true}");
    std::fs::write(&one, text).unwrap();
    let e = LoadedScenario::load(&one).unwrap_err().to_string();
    assert!(e.contains("control vantage"), "{e}");
}
