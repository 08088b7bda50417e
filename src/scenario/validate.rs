//! Checks a parsed scenario against everything serde cannot see: cross
//! references (pairs → countries → nodes), app ids against the profiles,
//! files it names. Errors point at the offending value in the source.

use super::apps::AppProfiles;
use super::locate::{Seg, locate};
use super::{LoadedScenario, Scenario, ScenarioError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

struct Ctx<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, path: &[Seg<'_>], message: impl Into<String>) -> ScenarioError {
        let (line, column) = locate(self.text, path);
        ScenarioError::Invalid {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field_name(path),
            message: message.into(),
        }
    }
}

fn field_name(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !s.starts_with('-')
}

/// Validates and resolves the files a scenario names.
/// `profiles_dir`: the device-profiles folder its defaults come from
/// ([`super::data::profiles_dir`]).
pub(super) fn validate(
    sc: Scenario,
    text: &str,
    file: &Path,
    profiles_dir: Option<PathBuf>,
) -> Result<LoadedScenario, ScenarioError> {
    let cx = Ctx { text, file };
    let base = file.parent().unwrap_or(Path::new("."));
    // (in the order the checks always ran: the first error is the one reported)
    check_name(&cx, &sc)?;
    check_phones(&cx, &sc, base)?;
    let profiles = app_profiles(&sc, base, profiles_dir.as_deref())?;
    check_apps(&cx, &sc, &profiles)?;
    check_countries(&cx, &sc)?;
    check_pairs(&cx, &sc)?;
    let texts = message_texts(&cx, &sc, base)?;
    check_settings(&cx, &sc, base)?;
    check_router(&cx, &sc)?;
    check_node_steps(&cx, &sc)?;
    Ok(LoadedScenario {
        scenario: sc,
        path: file.to_path_buf(),
        source: text.to_string(),
        texts,
        profiles,
        profiles_dir,
    })
}

/// The campaign name and the exempt networks.
fn check_name(cx: &Ctx<'_>, sc: &Scenario) -> Result<(), ScenarioError> {
    use Seg::{Index, Key};
    if !is_name(&sc.name) {
        return Err(cx.err(
            &[Key("name")],
            format!(
                "expected lower-case letters, digits, '-' or '_' (at most 64), found {:?}",
                sc.name
            ),
        ));
    }
    for (i, n) in sc.exempt_networks.iter().enumerate() {
        if let Err(e) = n.parse::<ipnetwork::IpNetwork>() {
            return Err(cx.err(
                &[Key("exempt_networks"), Index(i)],
                format!("expected an address range such as 198.18.0.0/15, found {n:?}: {e}"),
            ));
        }
    }
    Ok(())
}

/// Phones: distinct, their profile files present; exactly two without
/// `phone_pairs`, else every phone in exactly one pair.
fn check_phones(cx: &Ctx<'_>, sc: &Scenario, base: &Path) -> Result<(), ScenarioError> {
    use Seg::{Index, Key};
    if sc.phone_pairs.is_empty() && sc.phones.len() != 2 {
        return Err(cx.err(
            &[Key("phones")],
            format!(
                "expected exactly two phones (A and B), found {}; several pairs are named in phone_pairs",
                sc.phones.len()
            ),
        ));
    }
    let mut ids = BTreeSet::new();
    for (i, p) in sc.phones.iter().enumerate() {
        if !is_name(&p.id) {
            return Err(cx.err(
                &[Key("phones"), Index(i), Key("id")],
                format!(
                    "expected a profile id (lower-case letters, digits, '-'), found {:?}",
                    p.id
                ),
            ));
        }
        if let Some(prof) = &p.profile
            && !base.join(prof).is_file()
        {
            return Err(cx.err(
                &[Key("phones"), Index(i), Key("profile")],
                format!(
                    "phone profile {} not found (relative to the scenario file)",
                    prof.display()
                ),
            ));
        }
        if !ids.insert(p.id.as_str()) {
            return Err(cx.err(
                &[Key("phones"), Index(i), Key("id")],
                if i == 1 && sc.phone_pairs.is_empty() {
                    "phone B must differ from phone A".to_string()
                } else {
                    format!("phone {:?} listed twice", p.id)
                },
            ));
        }
    }
    check_phone_pairs(cx, sc, &ids)?;
    if sc.node_capacity == 0 {
        return Err(cx.err(
            &[Key("node_capacity")],
            "expected at least 1 measurement at once per node",
        ));
    }
    // A node capture is the node's tunnel end: two measurements on one
    // node would share (and each stop) one capture.
    if sc.node_capacity > 1 && sc.capture.points.contains(&super::CapturePointKind::Node) {
        return Err(cx.err(
            &[Key("node_capacity")],
            "more than 1 measurement at once per node needs `capture.points` without `node` \
             (a node capture would hold, and be stopped by, another pair's measurement)",
        ));
    }
    Ok(())
}

/// `phone_pairs`: phones of `phones`, each in one pair, every phone in a pair.
fn check_phone_pairs(
    cx: &Ctx<'_>,
    sc: &Scenario,
    ids: &BTreeSet<&str>,
) -> Result<(), ScenarioError> {
    use Seg::{Index, Key};
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for (i, pair) in sc.phone_pairs.iter().enumerate() {
        for (j, id) in pair.iter().enumerate() {
            let at = [Key("phone_pairs"), Index(i), Index(j)];
            if !ids.contains(id.as_str()) {
                return Err(cx.err(
                    &at,
                    format!("unknown phone {id:?}: a pair names phones listed under phones"),
                ));
            }
            if !used.insert(id.as_str()) {
                return Err(cx.err(
                    &at,
                    format!(
                        "phone {id:?} used twice: a phone is in one pair (it is in one measurement at a time)"
                    ),
                ));
            }
        }
    }
    if !sc.phone_pairs.is_empty()
        && let Some((i, p)) = sc
            .phones
            .iter()
            .enumerate()
            .find(|(_, p)| !used.contains(p.id.as_str()))
    {
        return Err(cx.err(
            &[Key("phones"), Index(i), Key("id")],
            format!("phone {:?} is in no pair of phone_pairs", p.id),
        ));
    }
    Ok(())
}

/// `app_profiles:`, else the default folder's `apps/` (the same files the
/// device layer drives the apps with), else the built-in ones.
fn app_profiles(
    sc: &Scenario,
    base: &Path,
    profiles_dir: Option<&Path>,
) -> Result<AppProfiles, ScenarioError> {
    let default_apps = profiles_dir.map(|d| d.join("apps")).filter(|d| d.is_dir());
    Ok(match (&sc.app_profiles, &default_apps) {
        (Some(dir), _) => AppProfiles::load_dir(&base.join(dir))?,
        (None, Some(dir)) => AppProfiles::load_dir(dir)?,
        (None, None) => AppProfiles::builtin(),
    })
}

/// Apps: at least one, each known to the profiles, none twice.
fn check_apps(cx: &Ctx<'_>, sc: &Scenario, profiles: &AppProfiles) -> Result<(), ScenarioError> {
    use Seg::{Index, Key};
    if sc.apps.is_empty() {
        return Err(cx.err(&[Key("apps")], "expected at least one app id"));
    }
    let mut seen = BTreeSet::new();
    for (i, a) in sc.apps.iter().enumerate() {
        if profiles.get(a).is_none() {
            let known: Vec<&str> = profiles.apps.iter().map(|p| p.id.as_str()).collect();
            return Err(cx.err(
                &[Key("apps"), Index(i)],
                format!("unknown app {a:?}; expected one of: {}", known.join(", ")),
            ));
        }
        if !seen.insert(a) {
            return Err(cx.err(&[Key("apps"), Index(i)], format!("app {a:?} listed twice")));
        }
    }
    Ok(())
}

/// Countries and their nodes: each node named once, defined under
/// `nodes:` for a real lab, and every defined node used.
fn check_countries(cx: &Ctx<'_>, sc: &Scenario) -> Result<(), ScenarioError> {
    use Seg::{Index, Key};
    if sc.countries.is_empty() {
        return Err(cx.err(&[Key("countries")], "expected at least one country"));
    }
    let mut all_nodes = BTreeSet::new();
    for (c, nodes) in &sc.countries {
        if nodes.is_empty() {
            return Err(cx.err(
                &[Key("countries"), Key(c.as_str())],
                format!(
                    "country {c} has no nodes; expected a list of node names in failover order"
                ),
            ));
        }
        for (i, n) in nodes.iter().enumerate() {
            let at = [Key("countries"), Key(c.as_str()), Index(i)];
            if !is_name(n) {
                return Err(cx.err(
                    &at,
                    format!("expected a node name (lower-case letters, digits, '-'), found {n:?}"),
                ));
            }
            if !all_nodes.insert(n.clone()) {
                return Err(cx.err(&at, format!("node {n:?} is listed twice")));
            }
            if sc.lab.is_none() && !sc.nodes.contains_key(n) {
                return Err(cx.err(
                    &at,
                    format!(
                        "node {n:?} is not defined under `nodes:` (needed for a real lab; \
                         a scenario with `lab:` takes its nodes from the virtual lab)"
                    ),
                ));
            }
        }
    }
    for n in sc.nodes.keys() {
        if !all_nodes.contains(n) {
            return Err(cx.err(
                &[Key("nodes"), Key(n)],
                format!("node {n:?} is defined but not used by any country"),
            ));
        }
    }
    Ok(())
}

/// Pairs: `all:` and `explicit:` name countries of `countries:`, and give
/// at least one pair.
fn check_pairs(cx: &Ctx<'_>, sc: &Scenario) -> Result<(), ScenarioError> {
    use Seg::{Index, Key};
    if sc.pairs.all.is_empty() && sc.pairs.explicit.is_empty() {
        return Err(cx.err(
            &[Key("pairs")],
            "expected `all: [countries…]` and/or `explicit: [[A, B], …]`",
        ));
    }
    for (i, c) in sc.pairs.all.iter().enumerate() {
        if !sc.countries.contains_key(c) {
            return Err(cx.err(
                &[Key("pairs"), Key("all"), Index(i)],
                format!("country {c} has no entry under `countries:`"),
            ));
        }
    }
    for (i, pair) in sc.pairs.explicit.iter().enumerate() {
        for (j, c) in pair.iter().enumerate() {
            if !sc.countries.contains_key(c) {
                let (line, column) = locate(cx.text, &[Key("pairs"), Key("explicit"), Index(i)]);
                return Err(ScenarioError::Invalid {
                    file: cx.file.to_path_buf(),
                    line,
                    column,
                    field: format!("pairs.explicit[{i}][{j}]"),
                    message: format!("country {c} has no entry under `countries:`"),
                });
            }
        }
    }
    if sc.pairs.explicit.is_empty()
        && !sc.pairs.include_same
        && sc.pairs.all.iter().collect::<BTreeSet<_>>().len() < 2
    {
        return Err(cx.err(
            &[Key("pairs"), Key("all")],
            "expected at least two different countries (or `include_same: true`)",
        ));
    }
    Ok(())
}

/// The message texts: `texts:` then the lines of `file:` (relative to the
/// scenario), at least one, none blank.
fn message_texts(cx: &Ctx<'_>, sc: &Scenario, base: &Path) -> Result<Vec<String>, ScenarioError> {
    use Seg::{Index, Key};
    let m = &sc.messages;
    if m.per_direction == 0 {
        return Err(cx.err(
            &[Key("messages"), Key("per_direction")],
            "expected at least 1 message per direction",
        ));
    }
    let mut texts = Vec::new();
    for (i, t) in m.texts.iter().enumerate() {
        if t.trim().is_empty() {
            return Err(cx.err(
                &[Key("messages"), Key("texts"), Index(i)],
                "expected a non-empty message text",
            ));
        }
        texts.push(t.clone());
    }
    if let Some(f) = &m.file {
        let p = base.join(f);
        let body = std::fs::read_to_string(&p).map_err(|e| {
            cx.err(
                &[Key("messages"), Key("file")],
                format!("cannot read {}: {e}", p.display()),
            )
        })?;
        texts.extend(
            body.lines()
                .map(str::trim_end)
                .filter(|l| !l.trim().is_empty())
                .map(String::from),
        );
    }
    if texts.is_empty() {
        return Err(cx.err(
            &[Key("messages")],
            "expected message texts: `texts: [...]` or `file: sentences.txt`",
        ));
    }
    Ok(texts)
}

/// Repetitions, timeouts, capture and geo settings.
fn check_settings(cx: &Ctx<'_>, sc: &Scenario, base: &Path) -> Result<(), ScenarioError> {
    use Seg::Key;
    if sc.repetitions == 0 {
        return Err(cx.err(&[Key("repetitions")], "expected at least 1 repetition"));
    }
    for (k, d) in [
        ("step", sc.timeouts.step),
        ("receive", sc.timeouts.receive),
        ("measurement", sc.timeouts.measurement),
    ] {
        if d.0.is_zero() {
            return Err(cx.err(&[Key("timeouts"), Key(k)], "expected a duration above 0"));
        }
    }
    if sc.capture.points.is_empty() {
        return Err(cx.err(
            &[Key("capture"), Key("points")],
            "expected at least one capture point (router, node)",
        ));
    }
    if sc.capture.snaplen < 96 {
        return Err(cx.err(
            &[Key("capture"), Key("snaplen")],
            "expected a snap length of at least 96 bytes (1500 or more keeps DNS and TLS names)",
        ));
    }
    if let Err(e) = crate::geo::groups::GroupSet::resolve(&base_resolve(base, &sc.geo.groups)) {
        return Err(cx.err(&[Key("geo"), Key("groups")], e.to_string()));
    }
    if let Some(db) = &sc.geo.db
        && !base.join(db).is_file()
    {
        return Err(cx.err(
            &[Key("geo"), Key("db")],
            format!("mmdb file {} not found", db.display()),
        ));
    }
    Ok(())
}

/// `router:`: phones of the scenario, one interface each.
fn check_router(cx: &Ctx<'_>, sc: &Scenario) -> Result<(), ScenarioError> {
    use Seg::Key;
    let Some(r) = &sc.router else { return Ok(()) };
    for id in r.phones.keys() {
        if !sc.phones.iter().any(|p| &p.id == id) {
            return Err(cx.err(
                &[Key("router"), Key("phones"), Key(id)],
                format!("{id:?} is not one of the scenario's phones"),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (id, p) in &r.phones {
        if !seen.insert(&p.interface) {
            return Err(cx.err(
                &[Key("router"), Key("phones"), Key(id), Key("interface")],
                format!(
                    "interface {:?} is already another phone's: each phone needs its own router interface",
                    p.interface
                ),
            ));
        }
    }
    Ok(())
}

/// Node steps go through the node agent: a real-lab node (declared under
/// `nodes:`) the campaign uses needs its SSH key and host key, or the
/// step could not run (refused here rather than skipped at run time).
/// Probes need a control vantage in a second country; a lab censor a
/// country of the scenario.
fn check_node_steps(cx: &Ctx<'_>, sc: &Scenario) -> Result<(), ScenarioError> {
    use Seg::Key;
    let node_steps = [
        ("steps.paths", sc.steps.paths),
        ("steps.probes", sc.steps.probes),
        (
            "capture.points: node",
            sc.capture.points.contains(&super::CapturePointKind::Node),
        ),
    ];
    if let Some((what, _)) = node_steps.iter().find(|(_, on)| *on) {
        for n in sc.countries.values().flatten() {
            if let Some(spec) = sc.nodes.get(n)
                && (spec.identity.is_none() || spec.known_hosts.is_none())
            {
                return Err(cx.err(
                    &[Key("nodes"), Key(n)],
                    format!(
                        "{what} runs through the node agent over SSH: node {n} needs \
                         `identity` and `known_hosts` (or turn the step off)"
                    ),
                ));
            }
        }
    }
    if sc.steps.probes && sc.countries.len() < 2 {
        return Err(cx.err(
            &[Key("steps"), Key("probes")],
            "probes compare with a control vantage in another country: \
             expected nodes in at least two countries",
        ));
    }
    if let Some(lab) = &sc.lab
        && let Some(c) = &lab.censor
        && !sc.countries.contains_key(&c.country)
    {
        return Err(cx.err(
            &[Key("lab"), Key("censor"), Key("country")],
            format!(
                "censored country {} has no entry under `countries:`",
                c.country
            ),
        ));
    }
    Ok(())
}

/// A groups spec is a preset name or a file relative to the scenario.
fn base_resolve(base: &Path, spec: &str) -> String {
    if crate::geo::groups::PRESETS.contains(&spec) {
        spec.to_string()
    } else {
        base.join(spec).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "\
name: t
phones: [{id: a}, {id: b}]
apps: [whatsapp]
countries: {DE: [de-1], BR: [br-1]}
pairs: {explicit: [[DE, BR]]}
messages: {per_direction: 1, texts: [hi]}
lab: {}
";

    fn parse(extra: &str) -> (Scenario, String) {
        let text = format!("{BASE}{extra}");
        (serde_yaml_ng::from_str(&text).unwrap(), text)
    }

    fn field(r: Result<impl std::fmt::Debug, ScenarioError>) -> String {
        match r {
            Err(ScenarioError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid-field error, got {other:?}"),
        }
    }

    #[test]
    fn the_pieces_accept_a_good_scenario() {
        let (sc, text) = parse("");
        let cx = Ctx {
            text: &text,
            file: Path::new("t.yaml"),
        };
        check_name(&cx, &sc).unwrap();
        check_phones(&cx, &sc, Path::new(".")).unwrap();
        check_apps(&cx, &sc, &AppProfiles::builtin()).unwrap();
        check_countries(&cx, &sc).unwrap();
        check_pairs(&cx, &sc).unwrap();
        assert_eq!(message_texts(&cx, &sc, Path::new(".")).unwrap(), ["hi"]);
        check_settings(&cx, &sc, Path::new(".")).unwrap();
        check_router(&cx, &sc).unwrap();
        check_node_steps(&cx, &sc).unwrap();
    }

    /// The field the check rejects after `edit`, on the base scenario
    /// plus `extra` YAML.
    fn rejected(
        extra: &str,
        edit: impl FnOnce(&mut Scenario),
        check: impl FnOnce(&Ctx<'_>, &Scenario) -> Result<(), ScenarioError>,
    ) -> String {
        let (mut sc, text) = parse(extra);
        edit(&mut sc);
        let cx = Ctx {
            text: &text,
            file: Path::new("t.yaml"),
        };
        field(check(&cx, &sc))
    }

    #[test]
    fn each_piece_names_the_field_it_rejects() {
        let fr = || super::super::CountryCode("FR".into());
        let br = super::super::CountryCode("BR".into());
        assert_eq!(
            rejected("", |sc| sc.pairs.explicit[0][1] = fr(), check_pairs),
            "pairs.explicit[0][1]"
        );
        assert_eq!(
            rejected(
                "",
                |sc| sc.messages.texts.push("  ".into()),
                |cx, sc| message_texts(cx, sc, Path::new(".")).map(drop)
            ),
            "messages.texts[1]"
        );
        assert_eq!(
            rejected(
                "",
                |sc| sc.apps.push("whatsapp".into()),
                |cx, sc| check_apps(cx, sc, &AppProfiles::builtin())
            ),
            "apps[1]"
        );
        // A real lab defines its nodes under `nodes:`.
        assert_eq!(
            rejected("", |sc| sc.lab = None, check_countries),
            "countries.BR[0]"
        );
        assert_eq!(
            rejected(
                "steps: {probes: true}\n",
                |sc| {
                    sc.countries.remove(&br);
                },
                check_node_steps
            ),
            "steps.probes"
        );
        assert_eq!(
            rejected(
                "router: {phones: {a: {addr: 10.0.0.2, interface: wlan0, priority: 100}, \
                 b: {addr: 10.0.0.3, interface: wlan0, priority: 101}}}\n",
                |_| {},
                check_router
            ),
            "router.phones.b.interface"
        );
    }

    /// Several pairs: a bad pair is reported at its line and column.
    #[test]
    fn phone_pairs_name_the_bad_pair() {
        let check = |pairs: &str, cap: &str| {
            let text = BASE.replace(
                "phones: [{id: a}, {id: b}]\n",
                &format!("phones: [{{id: a}}, {{id: b}}, {{id: c}}, {{id: d}}]\nphone_pairs:\n{pairs}{cap}"),
            );
            let sc: Scenario = serde_yaml_ng::from_str(&text).unwrap();
            let cx = Ctx {
                text: &text,
                file: Path::new("t.yaml"),
            };
            check_phones(&cx, &sc, Path::new("."))
        };
        check("  - [a, b]\n  - [c, d]\n", "").unwrap();
        let e = check("  - [a, b]\n  - [c, a]\n", "").unwrap_err();
        match &e {
            ScenarioError::Invalid { field, line, .. } => {
                assert_eq!((field.as_str(), *line), ("phone_pairs[1][1]", 5))
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("used twice"), "{e}");
        let e = check("  - [a, b]\n  - [c, x]\n", "").unwrap_err();
        assert!(e.to_string().contains("unknown phone \"x\""), "{e}");
        assert_eq!(field(check("  - [a, b]\n", "")), "phones[2].id");
        assert_eq!(
            field(check("  - [a, b]\n  - [c, d]\n", "node_capacity: 0\n")),
            "node_capacity"
        );
        assert_eq!(
            field(check("  - [a, b]\n  - [c, d]\n", "node_capacity: 2\n")),
            "node_capacity"
        );
        check(
            "  - [a, b]\n  - [c, d]\n",
            "node_capacity: 2\ncapture: {points: [router]}\n",
        )
        .unwrap();
        // Without phone_pairs, two phones only.
        let (mut sc, text) = parse("");
        sc.phones.push(sc.phones[0].clone());
        sc.phones[2].id = "c".into();
        let cx = Ctx {
            text: &text,
            file: Path::new("t.yaml"),
        };
        assert_eq!(field(check_phones(&cx, &sc, Path::new("."))), "phones");
    }
}
