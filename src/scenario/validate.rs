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
    use Seg::{Index, Key};
    let cx = Ctx { text, file };
    let base = file.parent().unwrap_or(Path::new("."));
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

    // Phones: exactly two, distinct.
    if sc.phones.len() != 2 {
        return Err(cx.err(
            &[Key("phones")],
            format!(
                "expected exactly two phones (A and B), found {}",
                sc.phones.len()
            ),
        ));
    }
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
    }
    if sc.phones[0].id == sc.phones[1].id {
        return Err(cx.err(
            &[Key("phones"), Index(1), Key("id")],
            "phone B must differ from phone A",
        ));
    }

    // Apps.
    // `app_profiles:`, else the default folder's `apps/` (the same files
    // the device layer drives the apps with), else the built-in ones.
    let default_apps = profiles_dir
        .as_ref()
        .map(|d| d.join("apps"))
        .filter(|d| d.is_dir());
    let profiles = match (&sc.app_profiles, &default_apps) {
        (Some(dir), _) => AppProfiles::load_dir(&base.join(dir))?,
        (None, Some(dir)) => AppProfiles::load_dir(dir)?,
        (None, None) => AppProfiles::builtin(),
    };
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

    // Countries and nodes.
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

    // Pairs.
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
                let (line, column) = locate(text, &[Key("pairs"), Key("explicit"), Index(i)]);
                return Err(ScenarioError::Invalid {
                    file: file.to_path_buf(),
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

    // Messages.
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
    if let Some(r) = &sc.router {
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
    }
    // Node steps go through the node agent: a real-lab node (declared under
    // `nodes:`) the campaign uses needs its SSH key and host key, or the
    // step could not run (refused here rather than skipped at run time).
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

    Ok(LoadedScenario {
        scenario: sc,
        path: file.to_path_buf(),
        source: text.to_string(),
        texts,
        profiles,
        profiles_dir,
    })
}

/// A groups spec is a preset name or a file relative to the scenario.
fn base_resolve(base: &Path, spec: &str) -> String {
    if crate::geo::groups::PRESETS.contains(&spec) {
        spec.to_string()
    } else {
        base.join(spec).display().to_string()
    }
}
