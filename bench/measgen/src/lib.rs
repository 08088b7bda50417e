//! `measgen`: an independent generator of measurement folders for
//! evaluating matador's server identification (issue 21).
//!
//! It shares no code with matador's virtual lab or with the synthetic
//! campaigns of matador's own tests, so the analysis cannot inherit a blind
//! spot from them. It writes what a real campaign leaves on disk
//! (docs/campaign-record.md): `index.json`, `measurements/<id>/meta.json`,
//! `events.jsonl` and one router capture per phone
//! (`capture-router-<phone>.pcap`, Ethernet, nanosecond pcap), plus
//! `truth.json` at the campaign root (never read by matador) naming the
//! servers that carried messages in each measurement. Everything follows a
//! seed. See docs/correlation.md for the conditions and the figures.

#![warn(missing_docs)]

pub mod conn;
pub mod model;
pub mod pcap;
pub mod rng;
pub mod traffic;

use model::{App, Conditions, Host};
use rng::Rng;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use traffic::{EventRec, Generated, Phone};

/// Spelling of `events.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The campaign record's (`ts`, `device`, `kind`, `message_id`, `uncertainty_ns`).
    Record,
    /// The open folder format's (`t`, `phone`, `event`, `msg`, `uncertainty_s`).
    Open,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Conditions of every measurement.
    pub cond: Conditions,
    /// Message measurements.
    pub measurements: usize,
    /// Messages per measurement: uniform in this range (inclusive).
    pub messages: (u32, u32),
    /// Phone pairs (each phone `pa<k>`/`pb<k>`).
    pub pairs: usize,
    /// Seed.
    pub seed: u64,
    /// Spelling of the events.
    pub dialect: Dialect,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            cond: Conditions::default(),
            measurements: 100,
            messages: (2, 20),
            pairs: 2,
            seed: 1,
            dialect: Dialect::Record,
        }
    }
}

/// The truth of one message measurement.
#[derive(Debug, Clone)]
pub struct Truth {
    /// Measurement id.
    pub id: String,
    /// App id.
    pub app: &'static str,
    /// Servers that carried message content.
    pub messaging: Vec<Host>,
}

/// A generated campaign.
#[derive(Debug)]
pub struct Campaign {
    /// Its folder.
    pub dir: PathBuf,
    /// Truth per message measurement.
    pub truth: Vec<Truth>,
    /// Messages in total.
    pub messages: u64,
}

const COUNTRIES: [(&str, &str); 4] = [("DE", "BR"), ("US", "CN"), ("FR", "IN"), ("GB", "KR")];

fn pair(k: usize) -> [Phone; 2] {
    let ip = |j: u8| IpAddr::V4(Ipv4Addr::new(10, 40 + k as u8, j, 2));
    [
        Phone {
            name: format!("pa{k}"),
            ip: ip(0),
            index: 0,
        },
        Phone {
            name: format!("pb{k}"),
            ip: ip(1),
            index: 1,
        },
    ]
}

/// Writes a campaign folder under `dir` (created).
pub fn write_campaign(dir: &Path, spec: &Spec) -> io::Result<Campaign> {
    let mut rng = Rng::new(spec.seed);
    let apps = model::apps(&mut rng);
    let shared = model::shared(&mut rng);
    std::fs::create_dir_all(dir.join("measurements"))?;
    let mut index = Vec::new();
    let mut truth = Vec::new();
    let mut messages = 0u64;
    let mut start = 1_750_000_000.0;
    let mut n = 0usize;
    let mut plan: Vec<(usize, usize, bool)> = Vec::new();
    if spec.cond.baselines {
        for k in 0..spec.pairs {
            for a in 0..apps.len() {
                plan.push((a, k, true));
            }
        }
    }
    for m in 0..spec.measurements {
        plan.push((m % apps.len(), (m / apps.len()) % spec.pairs.max(1), false));
    }
    for (a, k, baseline) in plan {
        let app = &apps[a];
        let phones = pair(k);
        let count = if baseline {
            0
        } else {
            rng.int(u64::from(spec.messages.0), u64::from(spec.messages.1)) as u32
        };
        let g = traffic::measurement(
            app,
            &shared,
            spec.cond,
            &phones,
            start,
            count,
            rng.fork(n as u64),
        );
        let id = format!("m{n:04}");
        let end = g.frames.iter().flatten().map(|f| f.t).fold(start, f64::max);
        let meta = meta_json(&id, app, &phones, k, baseline, count, start, end);
        write_measurement(
            &dir.join("measurements").join(&id),
            &meta,
            &g,
            app,
            &phones,
            spec.dialect,
        )?;
        index.push(meta);
        if !baseline {
            messages += u64::from(count);
            truth.push(Truth {
                id: id.clone(),
                app: app.id,
                messaging: g.truth.iter().copied().collect(),
            });
        }
        start = end + 30.0;
        n += 1;
    }
    let idx = format!(
        "{{\"schema\":\"matador/index/1\",\"measurements\":[{}]}}\n",
        index.join(",")
    );
    std::fs::write(dir.join("index.json"), idx)?;
    std::fs::write(dir.join("truth.json"), truth_json(&truth))?;
    Ok(Campaign {
        dir: dir.to_path_buf(),
        truth,
        messages,
    })
}

#[allow(clippy::too_many_arguments)]
fn meta_json(
    id: &str,
    app: &App,
    phones: &[Phone; 2],
    k: usize,
    baseline: bool,
    messages: u32,
    start: f64,
    end: f64,
) -> String {
    let (sc, rc) = COUNTRIES[k % COUNTRIES.len()];
    format!(
        concat!(
            "{{\"id\":\"{}\",\"kind\":\"{}\",\"app\":\"{}\",\"sender\":\"{}\",\"receiver\":\"{}\",",
            "\"sender_country\":\"{}\",\"receiver_country\":\"{}\",\"repetition\":1,\"messages\":{},",
            "\"status\":\"complete\",\"error\":null,\"started\":\"{:.3}\",\"ended\":\"{:.3}\"}}"
        ),
        id,
        if baseline { "baseline" } else { "message" },
        app.id,
        phones[0].name,
        phones[1].name,
        sc,
        rc,
        messages,
        start,
        end
    )
}

fn write_measurement(
    dir: &Path,
    meta: &str,
    g: &Generated,
    app: &App,
    phones: &[Phone; 2],
    dialect: Dialect,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("meta.json"), meta)?;
    let mut ev = String::new();
    for e in &g.events {
        ev.push_str(&event_json(e, app.id, &phones[e.phone].name, dialect));
        ev.push('\n');
    }
    std::fs::write(dir.join("events.jsonl"), ev)?;
    for (i, p) in phones.iter().enumerate() {
        let mut frames = g.frames[i].clone();
        let f = std::fs::File::create(dir.join(format!("capture-router-{}.pcap", p.name)))?;
        let mut w = io::BufWriter::new(f);
        pcap::write_pcap(&mut w, &mut frames)?;
        w.flush()?;
    }
    Ok(())
}

/// One line of `events.jsonl` in the given spelling.
pub fn event_json(e: &EventRec, app: &str, phone: &str, dialect: Dialect) -> String {
    let mut s = String::new();
    match dialect {
        Dialect::Record => {
            let _ = write!(
                s,
                "{{\"ts\":\"{:.9}\",\"device\":\"{phone}\",\"app\":\"{app}\",\"kind\":\"{}\"",
                e.t, e.kind
            );
            if let Some(m) = e.msg {
                let _ = write!(s, ",\"message_id\":\"msg-{m}\"");
            }
            if let Some(b) = e.bytes {
                let _ = write!(s, ",\"bytes\":{b}");
            }
            s.push_str(",\"clock_offset_ns\":0,\"clock_uncertainty_ns\":1000000");
            if let Some((b, a)) = e.uncertainty {
                let _ = write!(
                    s,
                    ",\"uncertainty_ns\":{{\"before\":{},\"after\":{}}}",
                    (b * 1e9).round() as i64,
                    (a * 1e9).round() as i64
                );
            }
        }
        Dialect::Open => {
            let kind = match e.kind {
                "send_tap" => "send",
                "received" => "receive",
                k => k,
            };
            let _ = write!(
                s,
                "{{\"t\":{:.6},\"phone\":\"{phone}\",\"app\":\"{app}\",\"event\":\"{kind}\"",
                e.t
            );
            if let Some(m) = e.msg {
                let _ = write!(s, ",\"msg\":\"msg-{m}\"");
            }
            if let Some(b) = e.bytes {
                let _ = write!(s, ",\"bytes\":{b}");
            }
            if let Some((b, a)) = e.uncertainty {
                let _ = write!(
                    s,
                    ",\"uncertainty_s\":{{\"before\":{b:.3},\"after\":{a:.3}}}"
                );
            }
        }
    }
    s.push('}');
    s
}

fn truth_json(truth: &[Truth]) -> String {
    let rows: Vec<String> = truth
        .iter()
        .map(|t| {
            let hosts: Vec<String> = t
                .messaging
                .iter()
                .map(|h| {
                    format!(
                        "{{\"ip\":\"{}\",\"port\":{},\"proto\":\"{}\"}}",
                        h.ip,
                        h.port,
                        h.carrier.proto()
                    )
                })
                .collect();
            format!(
                "{{\"id\":\"{}\",\"app\":\"{}\",\"messaging\":[{}]}}",
                t.id,
                t.app,
                hosts.join(",")
            )
        })
        .collect();
    format!(
        "{{\"schema\":\"measgen/truth/1\",\"measurements\":[\n{}\n]}}\n",
        rows.join(",\n")
    )
}
