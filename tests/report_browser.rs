//! report.html checked as a page in a real browser: Debian's headless
//! Chromium (no downloaded browser, no driver) loads a copy of the page with
//! `tests/report_browser/check.js` appended, at a desktop (1280 px) and a
//! phone (390 px) width, and `--dump-dom` returns what the script measured:
//! nothing wider than the window (outside scroll containers), a `<title>`
//! and `<desc>` in every SVG, WCAG AA contrast for every rendered text
//! (HTML and SVG), no resource fetched, and the CSS-only group overlay
//! recolouring its members. The unmodified page is also checked as text:
//! no URL, script, link or import.
//!
//! `MATADOR_REPORT_PAGE=FILE` checks another report.html as well (e.g. the
//! lab demo's); with `MATADOR_REPORT_SCREENSHOT=1` the screenshots of that
//! page (or of the fixture) are copied to docs/.

mod report_common;

use matador::geo::groups::GroupSet;
use matador::report::{self, Campaign, Format, Options};
use report_common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHECK_JS: &str = include_str!("report_browser/check.js");

fn chromium() -> &'static str {
    ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("headless Chromium is required: apt-get install chromium (scripts/install-deps.sh)")
}

/// Chromium with the flags of a quiet, offline, throw-away profile.
fn browser(profile: &Path, width: u32, height: u32) -> Command {
    let mut c = Command::new(chromium());
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--window-size={width},{height}"));
    c
}

/// What check.js measured.
#[derive(Debug, serde::Deserialize)]
struct Checked {
    width: f64,
    scroll_width: f64,
    overflow: Vec<String>,
    svgs: usize,
    svg_problems: Vec<String>,
    texts: usize,
    contrast: Vec<String>,
    scripts: usize,
    resources: Vec<String>,
    overlays: Vec<(String, usize)>,
}

/// What check.js reports when it throws.
#[derive(Debug, serde::Deserialize)]
struct Failed {
    error: String,
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn measure(page: &Path, work: &Path, width: u32) -> Checked {
    let html = std::fs::read_to_string(page).unwrap();
    let at = html.rfind("</body>").expect("no </body>");
    let probe = work.join(format!("probe-{width}.html"));
    // The page with the probe script, as the srcdoc of an iframe exactly
    // `width` px wide: headless Chromium's window cannot be narrower than
    // 500 px, an iframe is a viewport of its own (media queries, innerWidth).
    let inner = format!(
        "{}<script>{CHECK_JS}</script>\n{}",
        &html[..at],
        &html[at..]
    );
    let attr = inner.replace('&', "&amp;").replace('"', "&quot;");
    std::fs::write(
        &probe,
        format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"/></head><body style=\"margin:0\"><iframe style=\"border:0;display:block\" width=\"{width}\" height=\"900\" srcdoc=\"{attr}\"></iframe></body></html>"
        ),
    )
    .unwrap();
    let o = browser(
        &work.join(format!("profile-{width}")),
        width.max(500) + 40,
        1000,
    )
    .arg("--virtual-time-budget=10000")
    .arg("--dump-dom")
    .arg(format!("file://{}", probe.display()))
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dom = String::from_utf8_lossy(&o.stdout);
    let start = dom.find("<pre id=\"matador-check\">").unwrap_or_else(|| {
        panic!(
            "check.js wrote nothing at {width} px: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    }) + "<pre id=\"matador-check\">".len();
    let end = dom[start..].find("</pre>").unwrap() + start;
    let json = unescape(&dom[start..end]);
    if let Ok(e) = serde_json::from_str::<Failed>(&json) {
        panic!("check.js failed at {width} px: {}", e.error);
    }
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn screenshot(page: &Path, work: &Path, width: u32, height: u32) -> PathBuf {
    let shot = work.join(format!("shot-{width}.png"));
    let o = browser(&work.join(format!("shot-profile-{width}")), width, height)
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    shot
}

/// Every check on one page; returns the screenshots (desktop, phone).
fn check_page(page: &Path, work: &Path, groups_with_members: usize) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(page).unwrap().to_ascii_lowercase();
    for bad in [
        "http://", "https://", "<script", "src=", "href=", "<link", "@import", "url(",
    ] {
        assert!(!text.contains(bad), "{bad} in {}", page.display());
    }
    for width in [1280, 390] {
        let c = measure(page, work, width);
        assert_eq!(c.width, f64::from(width));
        assert!(
            c.scroll_width <= c.width,
            "{width} px: page scrolls sideways ({} px wide): {:?}",
            c.scroll_width,
            c.overflow
        );
        assert!(c.overflow.is_empty(), "{width} px: {:?}", c.overflow);
        assert!(c.svgs >= 4, "{width} px: {} SVGs", c.svgs);
        assert!(c.svg_problems.is_empty(), "{:?}", c.svg_problems);
        assert!(c.texts > 100, "only {} texts checked", c.texts);
        assert!(c.contrast.is_empty(), "{width} px: {:#?}", c.contrast);
        assert_eq!(c.scripts, 1, "a script other than the probe's");
        assert!(c.resources.is_empty(), "fetched: {:?}", c.resources);
        let recoloured = c
            .overlays
            .iter()
            .filter(|(id, n)| id != "ov-none" && *n > 0)
            .count();
        assert_eq!(recoloured, groups_with_members, "{:?}", c.overlays);
    }
    (
        screenshot(page, work, 1280, 2400),
        screenshot(page, work, 390, 2400),
    )
}

#[test]
fn report_page_checked_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, db) = lab_db(tmp.path());
    let c = Campaign::load(&fixtures().join("small")).unwrap();
    let g = GroupSet::preset("current").unwrap();
    let r = report::build(&c, &db, &g, &Options::default()).unwrap();
    let page = tmp.path().join("report.html");
    std::fs::write(&page, report::render(&r, Format::Html)).unwrap();
    // Every group of the preset has a member with a shape on the map.
    let shots = check_page(&page, tmp.path(), r.group_members.len());
    let mut docs = vec![
        ("report-desktop.png", shots.0),
        ("report-phone.png", shots.1),
    ];
    if let Some(other) = std::env::var_os("MATADOR_REPORT_PAGE") {
        let work = tmp.path().join("other");
        std::fs::create_dir_all(&work).unwrap();
        let groups = std::env::var("MATADOR_REPORT_PAGE_GROUPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(r.group_members.len());
        let s = check_page(Path::new(&other), &work, groups);
        docs = vec![("report-desktop.png", s.0), ("report-phone.png", s.1)];
    }
    if std::env::var_os("MATADOR_REPORT_SCREENSHOT").is_some() {
        for (name, shot) in docs {
            std::fs::copy(
                &shot,
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("docs")
                    .join(name),
            )
            .unwrap();
        }
    }
}

/// The checks can fail: a page with each fault is caught on each count.
#[test]
fn browser_checks_catch_a_faulty_page() {
    let tmp = tempfile::tempdir().unwrap();
    // An image served from loopback: a fetched resource the check must see.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 2048];
            let _ = std::io::Read::read(&mut conn, &mut buf);
            let body = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\" height=\"1\"/>";
            let _ = std::io::Write::write_all(
                &mut conn,
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    let page = tmp.path().join("bad.html");
    std::fs::write(
        &page,
        format!("<!DOCTYPE html><html><head><meta charset=\"utf-8\"/></head><body>\
<p>readable text</p><p style=\"color:#aaaaaa\">faint text</p>\
<div style=\"width:2000px\">too wide</div>\
<svg width=\"50\" height=\"20\"><title>no description</title><rect width=\"50\" height=\"20\" fill=\"#333333\"/><text x=\"2\" y=\"14\" fill=\"#444444\">dark</text></svg>\
<img src=\"http://127.0.0.1:{port}/pixel.svg\" alt=\"x\"/></body></html>"),
    )
    .unwrap();
    for width in [1280, 390] {
        let c = measure(&page, tmp.path(), width);
        assert!(c.scroll_width > c.width, "{c:?}");
        assert!(c.overflow.iter().any(|o| o.starts_with("div")), "{c:?}");
        assert_eq!(c.svg_problems.len(), 1, "{c:?}");
        // The faint paragraph and the dark-on-dark SVG text.
        assert_eq!(c.contrast.len(), 2, "{c:?}");
        assert!(c.contrast[0].contains("faint text"), "{c:?}");
        assert_eq!(c.resources.len(), 1, "{c:?}");
    }
}
