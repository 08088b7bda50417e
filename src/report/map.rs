//! The HTML report's world map: per app, arcs from each vantage country to
//! the countries of the servers its application paths reached, drawn over
//! country shapes of Natural Earth admin-0 1:110m (public domain; shipped in
//! `data/world-110m.txt`, made by `data/generate-world.py`, which records
//! the source version and checksum).
//!
//! An arc aggregates the application paths (traces) of one app with the same
//! vantage country, the same countries crossed on the way (waypoints) and
//! the same destination country, split by whether the path leaves the
//! vantage's M49 region — the answer Table 2 counts, computed with the same
//! `geo::locality::leaves_region`. Only traces of measurements counted in
//! Tables 2 and 3 are drawn. Its width grows with the number of
//! measurements; every arc carries its measurements (`data-m`) so a test
//! can recount Table 2 from what is drawn.

use super::html::esc;
use super::model::{PathRow, Report};
use crate::geo::locality::leaves_region;
use crate::geo::m49::M49;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Country shapes: `ISO2<TAB>SVG path` in tenths of a degree (plate carrée).
pub const WORLD_110M: &str = include_str!("data/world-110m.txt");

/// The map's view box: longitudes −180…180, latitudes 84…−58 (tenths of a degree).
const VIEW_BOX: &str = "0 60 3600 1420";

/// Projects latitude and longitude (degrees) into the map's coordinates.
pub fn project(lat: f64, lon: f64) -> (f64, f64) {
    ((lon + 180.0) * 10.0, (90.0 - lat) * 10.0)
}

/// Country shapes of the shipped data: (ISO alpha-2 or `--`, SVG path).
pub fn shapes() -> impl Iterator<Item = (&'static str, &'static str)> {
    WORLD_110M
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
}

/// Where a country's arcs start and end: the mean of its tzdata reference
/// points (`geo/data/country_points.csv`, capitals or largest cities).
pub fn anchors() -> BTreeMap<String, (f64, f64)> {
    let mut sums: BTreeMap<String, (f64, f64, f64)> = BTreeMap::new();
    for line in crate::geo::plausibility::POINTS_CSV.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 || line.starts_with('#') {
            continue;
        }
        let (Ok(lat), Ok(lon)) = (f[1].parse::<f64>(), f[2].parse::<f64>()) else {
            continue;
        };
        let e = sums.entry(f[0].to_string()).or_insert((0.0, 0.0, 0.0));
        e.0 += lat;
        e.1 += lon;
        e.2 += 1.0;
    }
    sums.into_iter()
        .map(|(cc, (la, lo, n))| (cc, project(la / n, lo / n)))
        .collect()
}

/// Does a path leave its vantage's region: yes, no, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Leaves {
    /// Some hop is outside the vantage's M49 region.
    Yes,
    /// Every geolocated hop is inside it.
    No,
    /// No hop geolocated, or the vantage has no M49 region.
    Unknown,
}

impl Leaves {
    /// CSS class and `data-leaves` value.
    pub fn class(self) -> &'static str {
        match self {
            Leaves::Yes => "leaves",
            Leaves::No => "stays",
            Leaves::Unknown => "unknown",
        }
    }
}

/// One drawn arc.
#[derive(Debug, Clone, PartialEq)]
pub struct Arc {
    /// App.
    pub app: String,
    /// Vantage country.
    pub from: String,
    /// Countries crossed between vantage and destination (repeats merged).
    pub via: Vec<String>,
    /// Destination (server) country.
    pub to: String,
    /// Whether these paths leave the vantage's region.
    pub leaves: Leaves,
    /// M49 region of the vantage, if any.
    pub region: Option<String>,
    /// Measurements whose paths the arc aggregates.
    pub measurements: BTreeSet<String>,
    /// Paths aggregated.
    pub paths: usize,
}

/// Arcs of every app, and per app the application paths that could not be
/// drawn (vantage or destination without a country).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MapData {
    /// Arcs, sorted by app, vantage, destination, waypoints, answer.
    pub arcs: Vec<Arc>,
    /// Per app: paths not drawn.
    pub undrawn: BTreeMap<String, usize>,
}

fn path_countries(r: &Report, p: &PathRow) -> Option<(String, String, Vec<String>)> {
    let from = r
        .node_countries
        .get(&p.node)
        .cloned()
        .or_else(|| p.hops.first().and_then(|h| h.country.clone()))?;
    let to = p
        .hops
        .iter()
        .rev()
        .find(|h| h.addr == Some(p.dst))
        .and_then(|h| h.country.clone())?;
    let mut via: Vec<String> = Vec::new();
    for c in p.countries.iter().filter(|c| *c != "?") {
        if via.last() != Some(c) {
            via.push(c.clone());
        }
    }
    if via.first() == Some(&from) {
        via.remove(0);
    }
    if via.last() == Some(&to) {
        via.pop();
    }
    Some((from, to, via))
}

/// Arcs of the report's application paths (see the module docs).
pub fn map_data(r: &Report) -> MapData {
    let m49 = M49::shipped();
    type Key = (String, String, String, Vec<String>, Leaves);
    let mut acc: BTreeMap<Key, (Option<String>, BTreeSet<String>, usize)> = BTreeMap::new();
    let mut undrawn: BTreeMap<String, usize> = BTreeMap::new();
    for p in r
        .paths
        .iter()
        .filter(|p| p.locality && p.class == "application")
    {
        let Some(app) = &p.app else { continue };
        let Some((from, to, via)) = path_countries(r, p) else {
            *undrawn.entry(app.clone()).or_default() += 1;
            continue;
        };
        let region = m49.country(&from).and_then(|c| c.region.clone());
        let hops: Vec<Option<&str>> = p.hops.iter().map(|h| h.country.as_deref()).collect();
        let leaves = region
            .as_ref()
            .and_then(|reg| leaves_region(&hops, &m49, &reg.code).ok())
            .and_then(|v| v.value)
            .map_or(
                Leaves::Unknown,
                |b| if b { Leaves::Yes } else { Leaves::No },
            );
        let e = acc
            .entry((app.clone(), from, to, via, leaves))
            .or_insert_with(|| (region.map(|a| a.name), BTreeSet::new(), 0));
        e.1.insert(p.measurement.clone());
        e.2 += 1;
    }
    let arcs = acc
        .into_iter()
        .map(
            |((app, from, to, via, leaves), (region, measurements, paths))| Arc {
                app,
                from,
                via,
                to,
                leaves,
                region,
                measurements,
                paths,
            },
        )
        .collect();
    MapData { arcs, undrawn }
}

/// CSS class of an interest group in the overlay (`g0`, `g1`, …).
pub fn group_class(i: usize) -> String {
    format!("g{i}")
}

/// The group overlay's radio buttons, the legend and one map per app.
pub fn maps_html(r: &Report) -> String {
    let data = map_data(r);
    let anchors = anchors();
    let mut s = String::from("<div class=\"maps\">\n");
    s.push_str(
        "<input type=\"radio\" name=\"overlay\" id=\"ov-none\" checked=\"checked\"/><label for=\"ov-none\">no group overlay</label>\n",
    );
    for (i, g) in r.group_members.iter().enumerate() {
        let _ = writeln!(
            s,
            "<input type=\"radio\" name=\"overlay\" id=\"ov-{c}\"/><label for=\"ov-{c}\">{}</label>",
            esc(&g.name),
            c = group_class(i)
        );
    }
    s.push_str(
        "<p class=\"legend\"><span class=\"ln leaves\"></span>leaves the vantage's region <span class=\"ln stays\"></span>stays in it <span class=\"ln unknown\"></span>unknown (no hop geolocated) <span class=\"dot\"></span>country crossed on the way · width: measurements · <b>bold code</b> above: vantage, <u>underlined code</u> below: server country · overlay: members of the chosen group</p>\n<div class=\"mapgrid\">\n",
    );
    for (ai, app) in r.apps.iter().enumerate() {
        let arcs: Vec<&Arc> = data.arcs.iter().filter(|a| &a.app == app).collect();
        let undrawn = data.undrawn.get(app).copied().unwrap_or(0);
        s.push_str(&app_map(r, ai, app, &arcs, undrawn, &anchors));
    }
    s.push_str("</div>\n</div>\n");
    s
}

/// The SVG path of an arc through its waypoints (quadratic bends, `bend`
/// separates arcs between the same countries); a small loop when the
/// server is in the vantage's own country.
fn arc_path(points: &[(f64, f64)], bend: f64) -> String {
    let mut d = format!("M{:.0} {:.0}", points[0].0, points[0].1);
    if points.len() == 1 || points.windows(2).all(|w| w[0] == w[1]) {
        let r = 40.0 * bend.abs().max(0.5);
        let _ = write!(d, "c{:.0} {:.0} {:.0} {:.0} 0 0", -r, -1.5 * r, r, -1.5 * r);
        return d;
    }
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        let (mx, my) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let (dx, dy) = (x1 - x0, y1 - y0);
        // Perpendicular offset: arcs bow away from the straight line.
        let (cx, cy) = (mx - dy * 0.2 * bend, my + dx * 0.2 * bend);
        let _ = write!(d, "Q{cx:.0} {cy:.0} {x1:.0} {y1:.0}");
    }
    d
}

/// A country code beside its anchor: vantages above, servers below, so
/// neighbours (DE and NL) stay apart.
fn country_label(s: &mut String, at: (f64, f64), cc: &str, class: &str, dy: f64) {
    let _ = writeln!(
        s,
        "<text x=\"{:.0}\" y=\"{:.0}\" class=\"{class}\" text-anchor=\"middle\">{}</text>",
        at.0,
        at.1 + dy,
        esc(cc)
    );
}

fn app_map(
    r: &Report,
    ai: usize,
    app: &str,
    arcs: &[&Arc],
    undrawn: usize,
    anchors: &BTreeMap<String, (f64, f64)>,
) -> String {
    let count = |l: Leaves| -> usize {
        arcs.iter()
            .filter(|a| a.leaves == l)
            .flat_map(|a| a.measurements.iter())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let vantages: BTreeSet<&str> = arcs.iter().map(|a| a.from.as_str()).collect();
    let servers: BTreeSet<&str> = arcs.iter().map(|a| a.to.as_str()).collect();
    let paths: usize = arcs.iter().map(|a| a.paths).sum();
    let desc = format!(
        "{paths} application paths of {app} from {} vantage countries ({}) to servers in {} countries ({}); measurements with a path leaving the vantage's region: {}, with a path staying in it: {}, with a path of unknown answer: {}; paths not drawn (vantage or server without a country): {undrawn}.",
        vantages.len(),
        vantages.iter().copied().collect::<Vec<_>>().join(", "),
        servers.len(),
        servers.iter().copied().collect::<Vec<_>>().join(", "),
        count(Leaves::Yes),
        count(Leaves::No),
        count(Leaves::Unknown),
    );
    let id = format!("map-{ai}");
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<figure class=\"map\"><figcaption>{}</figcaption><svg class=\"world\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" width=\"720\" height=\"284\" viewBox=\"{VIEW_BOX}\" data-app=\"{}\"><title id=\"{id}-t\">Where {}'s messages go</title><desc id=\"{id}-d\">{}</desc>",
        esc(app),
        esc(app),
        esc(app),
        esc(&desc)
    );
    s.push_str("<rect x=\"0\" y=\"60\" width=\"3600\" height=\"1420\" class=\"sea\"/>\n<g class=\"land\">\n");
    for (cc, d) in shapes() {
        let mut class = String::from("c");
        for (gi, g) in r.group_members.iter().enumerate() {
            if g.members.iter().any(|m| m == cc) {
                class.push(' ');
                class.push_str(&group_class(gi));
            }
        }
        if vantages.contains(cc) {
            class.push_str(" vantage");
        } else if servers.contains(cc) {
            class.push_str(" server");
        }
        let _ = writeln!(s, "<path class=\"{class}\" d=\"{d}\"/>");
    }
    s.push_str("</g>\n<g class=\"arcs\">\n");
    let max = arcs
        .iter()
        .map(|a| a.measurements.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut waypoints: BTreeSet<&str> = BTreeSet::new();
    for a in arcs {
        let mut names = vec![a.from.as_str()];
        names.extend(a.via.iter().map(String::as_str));
        names.push(a.to.as_str());
        let points: Vec<(f64, f64)> = names
            .iter()
            .filter_map(|c| anchors.get(*c))
            .copied()
            .collect();
        if points.len() != names.len() {
            continue;
        }
        waypoints.extend(a.via.iter().map(String::as_str));
        let k = seen.entry((a.from.as_str(), a.to.as_str())).or_default();
        // 1, −1, 2, −2, …: arcs between the same countries fan out.
        let bend = (*k / 2 + 1) as f64 * if k.is_multiple_of(2) { 1.0 } else { -1.0 };
        *k += 1;
        let n = a.measurements.len();
        let width = 1.5 + 6.0 * (n as f64 / max).sqrt();
        let via = if a.via.is_empty() {
            String::new()
        } else {
            format!(" via {}", a.via.join(", "))
        };
        let answer = match (a.leaves, &a.region) {
            (Leaves::Yes, Some(reg)) => format!("leaves {reg}"),
            (Leaves::No, Some(reg)) => format!("stays in {reg}"),
            _ => "unknown whether it leaves the region".to_string(),
        };
        let _ = writeln!(
            s,
            "<path class=\"arc {}\" stroke-width=\"{width:.1}\" d=\"{}\" data-from=\"{}\" data-to=\"{}\" data-via=\"{}\" data-leaves=\"{}\" data-n=\"{n}\" data-m=\"{}\"><title>{}: {} → {}{via}, {n} measurements ({} paths), {answer}</title></path>",
            a.leaves.class(),
            arc_path(&points, bend),
            esc(&a.from),
            esc(&a.to),
            esc(&a.via.join(" ")),
            a.leaves.class(),
            esc(&a.measurements.iter().cloned().collect::<Vec<_>>().join(" ")),
            esc(app),
            esc(&a.from),
            esc(&a.to),
            a.paths
        );
    }
    for w in &waypoints {
        if let Some(&(x, y)) = anchors.get(*w) {
            let _ = writeln!(
                s,
                "<circle cx=\"{x:.0}\" cy=\"{y:.0}\" r=\"9\" class=\"waypoint\"><title>{} crossed on the way</title></circle>",
                esc(w)
            );
        }
    }
    for (set, class, dy) in [
        (&servers, "lbl server", 95.0),
        (&vantages, "lbl vantage", -30.0),
    ] {
        for cc in set.iter() {
            if let Some(&p) = anchors.get(*cc) {
                country_label(&mut s, p, cc, class, dy);
            }
        }
    }
    s.push_str("</g>\n</svg></figure>\n");
    s
}

/// CSS of the maps: the overlay rules depend on the number of groups.
pub fn map_css(r: &Report) -> String {
    let mut s = String::from(
        ".maps input{margin-left:.8em}.mapgrid{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,560px),1fr));gap:1em}\
.map{margin:0}.map svg{width:100%;height:auto;border:1px solid #999999}\
.sea{fill:#ffffff}.c{fill:#dddddd;stroke:#ffffff;stroke-width:1;vector-effect:non-scaling-stroke}\
.c.vantage{fill:#9a9a9a}.c.server{fill:#bcbcbc}\
.arc{fill:none;stroke-linecap:round;vector-effect:non-scaling-stroke;opacity:.85}\
.arc.leaves{stroke:#b2182b}.arc.stays{stroke:#2166ac;stroke-dasharray:6 3}.arc.unknown{stroke:#595959;stroke-dasharray:1 3}\
.waypoint{fill:#ffffff;stroke:#222222;stroke-width:1.5;vector-effect:non-scaling-stroke}\
.lbl{font:bold 80px sans-serif;fill:#000000;paint-order:stroke;stroke:#ffffff;stroke-width:16px}\
.lbl.server{font-weight:normal;text-decoration:underline}\
.ln{display:inline-block;width:2.2em;border-top:3px solid #b2182b;vertical-align:middle;margin:0 .3em 0 .8em}\
.ln.stays{border-top:3px dashed #2166ac}.ln.unknown{border-top:3px dotted #595959}\
.dot{display:inline-block;width:.6em;height:.6em;border:1.5px solid #222222;border-radius:50%;margin:0 .3em 0 .8em}\n",
    );
    for i in 0..r.group_members.len() {
        let _ = writeln!(
            s,
            "#ov-{c}:checked~.mapgrid .{c}{{fill:#f4c542}}#ov-{c}:checked~.mapgrid .{c}.vantage,#ov-{c}:checked~.mapgrid .{c}.server{{fill:#c99a1e}}",
            c = group_class(i)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_cover_the_vantage_countries() {
        let codes: BTreeSet<&str> = shapes().map(|(c, _)| c).collect();
        // Natural Earth 1:110m has 177 admin-0 shapes; Antarctica is left out.
        assert_eq!(shapes().count(), 176);
        for cc in ["DE", "BR", "US", "CN", "JP", "AU", "RU", "FJ", "TW"] {
            assert!(codes.contains(cc), "{cc}");
        }
        assert!(!codes.contains("AQ"));
        // Every path stays inside the view box's longitudes once drawn:
        // rings crossing the antimeridian (Fiji, Chukotka) are drawn twice
        // within their country's one path.
        assert_eq!(shapes().filter(|(c, _)| *c == "RU").count(), 1);
    }

    #[test]
    fn anchors_and_projection() {
        let a = anchors();
        // Berlin-ish: Europe/Berlin and Europe/Busingen averaged.
        let (x, y) = a["DE"];
        assert!((x - 10.0 * (180.0 + 11.0)).abs() < 30.0, "{x}");
        assert!((y - 10.0 * (90.0 - 51.0)).abs() < 30.0, "{y}");
        // Small countries missing from 1:110m still have an anchor.
        assert!(a.contains_key("SG") && a.contains_key("HK"));
        assert_eq!(project(0.0, 0.0), (1800.0, 900.0));
    }

    #[test]
    fn arcs_bend_and_loop() {
        let d = arc_path(&[(0.0, 0.0), (100.0, 0.0)], 1.0);
        assert_eq!(d, "M0 0Q50 20 100 0");
        let d = arc_path(&[(0.0, 0.0), (100.0, 0.0)], -1.0);
        assert_eq!(d, "M0 0Q50 -20 100 0");
        // Server in the vantage's own country: a loop back to the point.
        assert!(arc_path(&[(5.0, 5.0), (5.0, 5.0)], 1.0).ends_with(" 0 0"));
    }
}
