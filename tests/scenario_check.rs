//! Scenario files: the shipped examples load, bad files fail with
//! file:line:column errors that say what was expected, the JSON Schema is
//! generated from the types and the committed copy is current, and plans
//! expand as documented.

use matador::campaign::plan::{Kind, Plan, Side, expand_pairs};
use matador::scenario::{LoadedScenario, ScenarioError};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> LoadedScenario {
    LoadedScenario::load(&root().join("scenarios").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

const GOOD: &str = "name: t
phones:
  - id: a
  - id: b
apps: [whatsapp, signal]
countries:
  DE: [de-1]
  BR: [br-1, br-2]
  US: [us-1]
pairs:
  all: [DE, BR, US]
messages:
  per_direction: 2
  texts: [one, two, three]
repetitions: 2
baseline: {runs: 1, duration: 10s}
lab: {}
";

fn parse(text: &str) -> Result<LoadedScenario, ScenarioError> {
    LoadedScenario::from_str(text, Path::new("/tmp/t.yaml"))
}

fn err_at(text: &str) -> (usize, usize, String) {
    match parse(text).unwrap_err() {
        ScenarioError::Yaml {
            line,
            column,
            message,
            ..
        } => (line, column, message),
        ScenarioError::Invalid {
            line,
            column,
            field,
            message,
            ..
        } => (line, column, format!("{field}: {message}")),
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn shipped_examples_load() {
    let demo = load("lab-demo.yaml");
    let sc = &demo.scenario;
    assert_eq!(sc.phones.len(), 2);
    assert_eq!(sc.countries.len(), 2);
    assert_eq!(sc.apps.len(), 4);
    assert_eq!(sc.messages.per_direction, 1);
    assert_eq!(load("pam2016.yaml").scenario.messages.per_direction, 2);
    assert!(sc.lab.is_some());
    let pam = load("pam2016.yaml");
    assert_eq!(
        pam.scenario.apps,
        ["signal", "threema", "wechat", "whatsapp"]
    );
    assert_eq!(pam.texts.len(), 8, "sentences.txt lines");
    assert!(pam.scenario.countries.len() >= 8);
    let cl = load("censorship-line-kakao.yaml");
    assert_eq!(cl.scenario.apps, ["line", "kakaotalk"]);
    let censor = cl.scenario.lab.as_ref().unwrap().censor.as_ref().unwrap();
    assert_eq!(censor.country.as_str(), "CN");
}

/// Several phone pairs: the plan names them; with one pair `plan.json`
/// is what it was (no `phone_pairs` key).
#[test]
fn phone_pairs_reach_the_plan_only_when_several() {
    let pairs = load("lab-pairs.yaml");
    assert_eq!(pairs.scenario.phone_pairs().len(), 3);
    let plan = Plan::expand(&pairs);
    assert_eq!(plan.phone_pairs.len(), 3);
    assert_eq!(plan.phone_pairs[2], ["lab-e", "lab-f"]);
    assert_eq!(plan.phones, ["lab-a", "lab-b"]);
    assert_eq!(plan.measurements.len(), 12);
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["phone_pairs"][1][0], "lab-c");
    let demo = Plan::expand(&load("lab-demo.yaml"));
    assert_eq!(demo.phone_pairs(), [["lab-a", "lab-b"]]);
    let json = serde_json::to_value(&demo).unwrap();
    assert!(json.get("phone_pairs").is_none(), "{json}");
}

#[test]
fn unknown_key_names_line_column_and_expected_keys() {
    let bad = GOOD.replace("  - id: b\n", "  - id: b\n    colour: red\n");
    let (l, c, m) = err_at(&bad);
    assert_eq!((l, c), (5, 5), "{m}");
    assert!(
        m.contains("unknown field `colour`") && m.contains("`profile`"),
        "{m}"
    );
    let bad = format!("{GOOD}bogus: 1\n");
    let (l, _, m) = err_at(&bad);
    assert_eq!(l, 18, "{m}");
    assert!(m.contains("expected one of"), "{m}");
}

#[test]
fn unknown_app_points_at_the_value() {
    let bad = GOOD.replace("[whatsapp, signal]", "[whatsapp, skype]");
    let (l, c, m) = err_at(&bad);
    assert_eq!((l, c), (5, 18), "{m}");
    assert!(
        m.contains("apps[1]") && m.contains("skype") && m.contains("whatsapp"),
        "{m}"
    );
    let e = parse(&bad).unwrap_err().to_string();
    assert!(e.starts_with("/tmp/t.yaml:5:18: "), "{e}");
}

#[test]
fn bad_values_say_what_was_expected() {
    let (l, _, m) = err_at(&GOOD.replace("duration: 10s", "duration: 10 parsecs"));
    assert_eq!(l, 16);
    assert!(m.contains("expected a duration"), "{m}");
    let (l, c, m) = err_at(&GOOD.replace("  US: [us-1]", "  us: [us-1]"));
    assert_eq!((l, c), (9, 3), "{m}");
    assert!(m.contains("country code"), "{m}");
    let (l, _, m) = err_at(&GOOD.replace("all: [DE, BR, US]", "all: [DE, BR, FR]"));
    assert_eq!(l, 11);
    assert!(m.contains("pairs.all[2]") && m.contains("FR"), "{m}");
    let (l, _, m) = err_at(&GOOD.replace("  BR: [br-1, br-2]\n", "  BR: []\n"));
    assert_eq!(l, 8);
    assert!(m.contains("no nodes"), "{m}");
    let (_, _, m) = err_at(&GOOD.replace("  - id: b\n", ""));
    assert!(m.contains("exactly two phones"), "{m}");
    // Without `lab:` nodes need SSH details.
    let (l, _, m) = err_at(&GOOD.replace("lab: {}\n", ""));
    assert_eq!(l, 8, "{m}");
    assert!(m.contains("not defined under `nodes:`"), "{m}");
    let (l, _, m) = err_at(&format!("{GOOD}exempt_networks: [198.18.0.0/99]\n"));
    assert!(l == 18 && m.contains("address range"), "{l}: {m}");
    let ok = parse(&format!("{GOOD}exempt_networks: [198.18.0.0/15]\n")).unwrap();
    assert_eq!(ok.scenario.exempt_networks().len(), 1);
    let (l, _, m) = err_at(&GOOD.replace("repetitions: 2", "repetitions: -1"));
    assert_eq!(l, 15, "{m}");
    let (l, _, m) = err_at("name: [unclosed\n");
    assert!(l >= 1 && !m.is_empty());
}

#[test]
fn committed_schema_is_current() {
    let generated = matador::scenario::schema::json_schema();
    let path = root().join("docs/scenario.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed.trim(),
        generated.trim(),
        "docs/scenario.schema.json is stale: run `matador scenario schema > docs/scenario.schema.json`"
    );
}

#[test]
fn plan_expansion() {
    let ls = parse(GOOD).unwrap();
    let pairs = expand_pairs(&ls.scenario);
    let names: Vec<String> = pairs.iter().map(|[a, b]| format!("{a}-{b}")).collect();
    assert_eq!(names, ["DE-BR", "DE-US", "BR-US"]);
    let plan = Plan::expand(&ls);
    // 3 pairs × 2 apps × (1 baseline + 2 repetitions).
    assert_eq!(plan.measurements.len(), 18);
    assert_eq!(plan.count_kind(Kind::Baseline), 6);
    assert_eq!(plan.total_messages(), 12 * 4);
    let ids: Vec<&str> = plan.measurements.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(&ids[..3], ["m0001", "m0002", "m0003"]);
    let m = &plan.measurements[1];
    assert_eq!(
        (m.kind, m.app.as_str(), m.repetition),
        (Kind::Message, "whatsapp", 1)
    );
    let sides: Vec<Side> = m.messages.iter().map(|x| x.from).collect();
    assert_eq!(sides, [Side::A, Side::B, Side::A, Side::B]);
    assert_eq!(m.messages[0].id, "m0002-1");
    assert_eq!(m.receiver_nodes, ["br-1", "br-2"]);
    // Same scenario → same plan (ids stable across resume).
    assert_eq!(Plan::expand(&parse(GOOD).unwrap()), plan);
    assert!(plan.estimated_secs() > 0.0);
    // Duplicated pairs count once.
    let dup = GOOD.replace(
        "  all: [DE, BR, US]\n",
        "  all: [DE, BR, US, DE]\n  explicit: [[BR, DE]]\n",
    );
    assert_eq!(expand_pairs(&parse(&dup).unwrap().scenario).len(), 3);
}

#[test]
fn cli_check_and_dry_run() {
    let out = assert_cmd::Command::cargo_bin("matador")
        .unwrap()
        .args(["run", "--dry-run"])
        .arg(root().join("scenarios/lab-demo.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("m0008") && text.contains("de-2 (virtual lab)"),
        "{text}"
    );
    assert!(
        text.contains("16 measurements (8 message, 8 baseline), 16 messages"),
        "{text}"
    );
    // One pair: the measurements' estimates summed, as before pairs.
    let demo =
        Plan::expand(&LoadedScenario::load(&root().join("scenarios/lab-demo.yaml")).unwrap());
    assert!(
        text.ends_with(&format!(
            ", estimated duration {}\n",
            matador::campaign::plan::human_secs(demo.estimated_secs())
        )),
        "{text}"
    );
    // Three pairs on disjoint nodes: each country pair's 4 measurements
    // (baseline 50 s, message run 56 s, twice) run one after the other on
    // their own pair, the three country pairs at once.
    let pairs = root().join("scenarios/lab-pairs.yaml");
    let out = assert_cmd::Command::cargo_bin("matador")
        .unwrap()
        .args(["run", "--dry-run"])
        .arg(&pairs)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with(
            ", estimated duration 3m 32s with 3 phone pairs (10m 36s of measurement time)\n"
        ),
        "{text}"
    );
    let out = assert_cmd::Command::cargo_bin("matador")
        .unwrap()
        .args(["scenario", "check"])
        .arg(&pairs)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("; about 3m 32s with 3 phone pairs (10m 36s of measurement time))"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, GOOD.replace("signal]", "signal, icq]")).unwrap();
    let out = assert_cmd::Command::cargo_bin("matador")
        .unwrap()
        .args(["scenario", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:5:26: apps[2]: unknown app \"icq\""),
        "{err}"
    );
}

#[test]
fn router_section_is_checked() {
    let with = |r: &str| format!("{GOOD}router:\n  phones:\n{r}");
    assert!(
        parse(&with(
            "    a: {addr: 198.18.1.10, interface: wlan0, priority: 1000}\n"
        ))
        .is_ok()
    );
    let (l, _, m) = err_at(&with(
        "    c: {addr: 198.18.1.10, interface: wlan0, priority: 1000}\n",
    ));
    assert_eq!(l, 20, "{m}");
    assert!(m.contains("not one of the scenario's phones"), "{m}");
    let (l, _, m) = err_at(&with(
        "    a: {addr: 198.18.1.10, interface: wlan0, priority: 1000}\n    b: {addr: 198.18.1.11, interface: wlan0, priority: 1001}\n",
    ));
    assert!(l >= 20 && m.contains("own router interface"), "{m}");
    let (_, _, m) = err_at(&with(
        "    a: {addr: nope, interface: wlan0, priority: 1000}\n",
    ));
    assert!(
        m.contains("invalid IP address") || m.contains("addr"),
        "{m}"
    );
}
