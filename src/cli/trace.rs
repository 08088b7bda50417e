//! `matador trace TARGET…`: ad-hoc Paris traceroutes (TCP/UDP/ICMP, IPv4 and
//! IPv6), locally or inside a network namespace, with optional hop
//! geolocation; or `--import-scamper FILE` to convert scamper JSON.

use anyhow::Context;
use clap::Args;
use matador::geo::db::GeoDb;
use matador::geo::plausibility::{Checker, Location};
use matador::paths::model::{Reply, Trace};
use matador::paths::{self, Proto, Target, TraceConfig};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `matador trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Target addresses or host names.
    #[arg(required_unless_present = "import_scamper")]
    pub targets: Vec<String>,
    /// Probe protocol: tcp (SYN to --port, in-protocol), udp or icmp (Paris).
    #[arg(long, default_value = "udp")]
    pub proto: Proto,
    /// Destination port for tcp/udp (default: 443 for tcp, 33434 for udp).
    #[arg(long)]
    pub port: Option<u16>,
    /// First TTL.
    #[arg(long, default_value_t = 1)]
    pub first_ttl: u8,
    /// Last TTL.
    #[arg(long, default_value_t = 30)]
    pub max_ttl: u8,
    /// Probes per hop.
    #[arg(long, default_value_t = 3)]
    pub probes: u8,
    /// Global rate limit, packets per second over all targets.
    #[arg(long, default_value_t = 100)]
    pub pps: u32,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 2.0)]
    pub wait: f64,
    /// Consecutive silent hops before giving up.
    #[arg(long, default_value_t = 5)]
    pub gap_limit: u8,
    /// Paris flow id (same id, same ECMP path).
    #[arg(long, default_value_t = 1)]
    pub paris_id: u16,
    /// TTLs awaiting a first answer at once.
    #[arg(long, default_value_t = 1)]
    pub window: u8,
    /// Milliseconds a repeat probe of a hop waits for the previous one's answer
    /// (default: the whole --wait; eases router ICMP rate limits).
    #[arg(long)]
    pub spread_ms: Option<u64>,
    /// Probe size in bytes (IP header included).
    #[arg(long)]
    pub size: Option<u16>,
    /// Network namespace to probe from (name under /run/netns or a path).
    #[arg(long)]
    pub netns: Option<String>,
    /// Virtual-lab mode: refuse targets outside 198.18.0.0/15 and fd00::/8.
    #[arg(long)]
    pub lab: bool,
    /// Print RIPE-Atlas-like JSON (one trace per line) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Country mmdb for hop geolocation (plausibility from RTTs).
    #[arg(long, value_name = "FILE")]
    pub geo_db: Option<PathBuf>,
    /// ASN mmdb (with --geo-db).
    #[arg(long, value_name = "FILE")]
    pub asn_db: Option<PathBuf>,
    /// Vantage point location for plausibility: country code or LAT,LON.
    #[arg(long)]
    pub from: Option<String>,
    /// Also store each trace as DIR/traces/<node>--<target>.json.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Node name used in stored file names (with --out).
    #[arg(long, default_value = "local")]
    pub node: String,
    /// Enumerate load-balanced paths (MDA-style, up to N flow ids per target)
    /// and print the interfaces per hop instead of single traces.
    #[arg(long, value_name = "N")]
    pub mda: Option<u16>,
    /// Convert scamper JSON (`scamper -O json`, sc_warts2json) instead of probing.
    #[arg(long, value_name = "FILE")]
    pub import_scamper: Option<PathBuf>,
}

fn resolve(t: &str) -> anyhow::Result<Target> {
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Target::addr(ip));
    }
    let addr = (t, 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {t:?}"))?
        .next()
        .with_context(|| format!("{t:?} has no address"))?;
    let mut target = Target::addr(addr.ip());
    target.name = Some(t.to_string());
    Ok(target)
}

/// Text rendering, traceroute style.
fn render(t: &Trace) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "trace to {}{} from {} ({:?}{}, paris id {}): {:?}, {} probes",
        t.dst_addr,
        t.dst_name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        t.src_addr,
        t.proto,
        t.dst_port.map(|p| format!(" port {p}")).unwrap_or_default(),
        t.paris_id,
        t.stop_reason,
        t.packets
    );
    if let Some(e) = &t.error {
        let _ = writeln!(o, "  error: {e}");
    }
    for h in &t.result {
        let _ = write!(o, "{:3} ", h.hop);
        let mut last: Option<IpAddr> = None;
        for r in &h.result {
            match r {
                Reply::Star { .. } => o.push_str(" *"),
                Reply::Answer(a) => {
                    if last != Some(a.from) {
                        let _ = write!(o, " {}", a.from);
                        last = Some(a.from);
                    }
                    let _ = write!(o, " {:.3} ms", a.rtt);
                    if let Some(e) = &a.err {
                        let _ = write!(o, " !{e}");
                    }
                    if let Some(f) = &a.flags {
                        let _ = write!(o, " [{f}]");
                    }
                    if a.injected == Some(true) {
                        o.push_str(" (injected by an on-path device)");
                    }
                    if let Some(x) = &a.icmpext {
                        for l in x.obj.iter().flat_map(|ob| &ob.mpls) {
                            let _ = write!(
                                o,
                                " <MPLS L={} E={} S={} T={}>",
                                l.label, l.exp, l.s, l.ttl
                            );
                        }
                    }
                }
            }
        }
        for g in &h.geo {
            let _ = write!(
                o,
                "  [{} {}{}]",
                g.addr,
                g.country
                    .as_deref()
                    .or(g.special.as_deref())
                    .unwrap_or("??"),
                if g.plausibility == "implausible" {
                    " implausible"
                } else {
                    ""
                }
            );
        }
        o.push('\n');
    }
    o
}

/// Runs `matador trace`.
pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let mut traces = if let Some(file) = &args.import_scamper {
        paths::scamper::import(file)?
    } else {
        let targets = args
            .targets
            .iter()
            .map(|t| resolve(t))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !(args.wait.is_finite() && args.wait > 0.0 && args.wait <= 60.0) {
            anyhow::bail!("--wait must be between 0 and 60 seconds");
        }
        let cfg = TraceConfig {
            proto: args.proto,
            port: args.port,
            first_ttl: args.first_ttl,
            max_ttl: args.max_ttl,
            probes: args.probes,
            pps: args.pps,
            wait: Duration::from_secs_f64(args.wait),
            gap_limit: args.gap_limit,
            paris_id: args.paris_id,
            window: args.window,
            size: args.size,
            spread: args.spread_ms.map(Duration::from_millis),
            lab_only: args.lab,
            netns: args.netns.clone(),
        };
        if let Some(max) = args.mda {
            let mut text = String::new();
            for t in &targets {
                let m = paths::mda::enumerate(&cfg, t, max)?;
                if args.json {
                    text.push_str(&serde_json::to_string(&m)?);
                    text.push('\n');
                    continue;
                }
                let _ = writeln!(
                    text,
                    "paths to {} over {} flows ({})",
                    m.dst,
                    m.flows,
                    if m.complete {
                        "complete at 95%"
                    } else {
                        "flow budget exhausted"
                    }
                );
                for (hop, addrs) in &m.hops {
                    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                    let _ = writeln!(text, "{hop:3}  {}", list.join("  "));
                }
            }
            return match std::io::stdout().lock().write_all(text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(ExitCode::SUCCESS),
            };
        }
        paths::trace(&cfg, &targets)?
    };
    if let Some(db) = &args.geo_db {
        let geo = GeoDb::open(db, args.asn_db.as_deref())?;
        let checker = Checker::shipped();
        let vantage = args.from.as_deref().map(Location::parse).transpose()?;
        for t in &mut traces {
            paths::geo::annotate(t, &geo, &checker, vantage.as_ref())?;
        }
    }
    if let Some(dir) = &args.out {
        for t in &traces {
            paths::record::write_trace(dir, &args.node, t)?;
        }
    }
    let mut text = String::new();
    for t in &traces {
        if args.json {
            text.push_str(&serde_json::to_string(t)?);
            text.push('\n');
        } else {
            text.push_str(&render(t));
        }
    }
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    let failed = traces.iter().any(|t| t.error.is_some() && t.packets == 0);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
