//! One pass over a capture: the replay report (flows, DNS, names,
//! attribution, interference) and, from the same decoded packets, the
//! payload series per server endpoint and direction that correlation needs.

use super::orient::Orient;
use crate::analysis::model::{CaptureReport, ServerRecord};
use crate::analysis::packet::{Packet, PacketSink, Transport};
use crate::analysis::replay::{ReplayOptions, ReportSink, analyze_reader_with, extra_sinks};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A server endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// 6 or 17.
    pub proto: u8,
}

impl Endpoint {
    /// `"tcp"` or `"udp"`.
    pub fn proto_name(&self) -> &'static str {
        if self.proto == 17 { "udp" } else { "tcp" }
    }
}

/// Payload packets of one endpoint in one direction, in time order, with
/// running byte sums (so any window's payload is two binary searches).
#[derive(Debug, Default, Clone)]
pub struct Series {
    /// Packet times.
    pub t: Vec<f64>,
    /// `cum[i]`: payload bytes of the first `i` packets (`len = t.len() + 1`).
    pub cum: Vec<u64>,
}

impl Series {
    fn build(mut pkts: Vec<(f64, u32)>) -> Series {
        pkts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut cum = Vec::with_capacity(pkts.len() + 1);
        cum.push(0u64);
        let mut s = 0u64;
        for p in &pkts {
            s += u64::from(p.1);
            cum.push(s);
        }
        Series {
            t: pkts.into_iter().map(|p| p.0).collect(),
            cum,
        }
    }

    /// Payload bytes in `[from, to]`.
    pub fn sum(&self, from: f64, to: f64) -> u64 {
        if self.t.is_empty() {
            return 0;
        }
        let lo = self.t.partition_point(|&t| t < from);
        let hi = self.t.partition_point(|&t| t <= to);
        if hi <= lo {
            0
        } else {
            self.cum[hi] - self.cum[lo]
        }
    }

    /// All payload bytes.
    pub fn total(&self) -> u64 {
        self.cum.last().copied().unwrap_or(0)
    }
}

/// What one pass over a capture keeps for correlation.
#[derive(Debug, Default)]
pub struct CaptureLog {
    /// The file.
    pub file: PathBuf,
    /// Server endpoints with payload, in order of first payload.
    pub endpoints: Vec<Endpoint>,
    /// Per endpoint: `[to the server, from the server]`.
    pub series: Vec<[Series; 2]>,
    /// Attribution's servers (app, evidence, names).
    pub servers: Vec<ServerRecord>,
    /// DNS / SNI / Host names seen for each address.
    pub names: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Addresses that answered DNS.
    pub resolvers: BTreeSet<IpAddr>,
    /// Earliest and latest packet time.
    pub span: Option<(f64, f64)>,
}

impl CaptureLog {
    /// Payload bytes of endpoint `i` (both directions).
    pub fn bytes(&self, i: usize) -> u64 {
        self.series[i][0].total() + self.series[i][1].total()
    }
}

/// Collects payload packets per endpoint while the replay engine runs.
#[derive(Default)]
struct Collect {
    orient: Orient,
    endpoints: Vec<Endpoint>,
    index: HashMap<Endpoint, usize>,
    pkts: Vec<[Vec<(f64, u32)>; 2]>,
    span: Option<(f64, f64)>,
}

/// The [`ReportSink`] that hands the collected packets back when the
/// capture ends (the engine owns its sinks, so the result goes through a
/// shared slot).
struct LogSink {
    c: Collect,
    slot: Rc<RefCell<Option<Collect>>>,
}

impl PacketSink for LogSink {
    fn packet(&mut self, pkt: &Packet<'_>) {
        let Some(ip) = pkt.ip else { return };
        let (sport, dport, payload, flags) = match pkt.transport {
            Transport::Tcp {
                sport,
                dport,
                payload,
                flags,
                ..
            } => (sport, dport, payload, flags),
            Transport::Udp {
                sport,
                dport,
                payload,
            } => (sport, dport, payload, 0),
            _ => return,
        };
        let c = &mut self.c;
        let t = pkt.ts.as_f64();
        let (ep, out) = c.orient.of(ip.proto, ip.src, sport, ip.dst, dport, flags);
        c.span = Some(match c.span {
            Some((a, b)) => (a.min(t), b.max(t)),
            None => (t, t),
        });
        // Payload length on the wire (the capture may be cut by the snap length).
        let hdr = pkt
            .cap_len
            .saturating_sub(payload.len() as u32)
            .min(pkt.orig_len);
        let len = pkt.orig_len.saturating_sub(hdr);
        if payload.is_empty() && len == 0 {
            return;
        }
        let n = c.endpoints.len();
        let i = *c.index.entry(ep).or_insert_with(|| {
            c.endpoints.push(ep);
            c.pkts.push([Vec::new(), Vec::new()]);
            n
        });
        c.pkts[i][usize::from(!out)].push((t, len));
    }
}

impl ReportSink for LogSink {
    fn finish(self: Box<Self>, _report: &mut CaptureReport) {
        *self.slot.borrow_mut() = Some(self.c);
    }
}

/// Decodes a capture once: the replay report (whose `errors` name the file
/// and byte offset of any damage; everything before it is kept) and the
/// correlation's packet log, names and attribution.
pub fn scan_capture(path: &Path, opts: &ReplayOptions) -> (CaptureReport, CaptureLog) {
    let slot = Rc::new(RefCell::new(None));
    let mut extra = extra_sinks(opts);
    extra.push(Box::new(LogSink {
        c: Collect::default(),
        slot: slot.clone(),
    }));
    let name = path.display().to_string();
    let report = match std::fs::File::open(path) {
        Ok(f) => analyze_reader_with(&name, std::io::BufReader::new(f), opts, extra),
        Err(e) => {
            let err = crate::capture::CaptureError::Open {
                file: name.clone(),
                source: e,
            };
            CaptureReport {
                capture: name,
                errors: vec![crate::analysis::replay::error_record(&err)],
                ..CaptureReport::default()
            }
        }
    };
    let c = slot.borrow_mut().take().unwrap_or_default();
    let mut log = CaptureLog {
        file: path.to_path_buf(),
        endpoints: c.endpoints,
        series: c
            .pkts
            .into_iter()
            .map(|[o, i]| [Series::build(o), Series::build(i)])
            .collect(),
        servers: report.servers.clone(),
        span: c.span,
        ..CaptureLog::default()
    };
    learn_names(&report, &mut log);
    (report, log)
}

/// Names per address from the report's DNS answers, SNIs and Host headers.
fn learn_names(report: &CaptureReport, log: &mut CaptureLog) {
    for d in &report.dns {
        log.resolvers.insert(d.server);
        for a in &d.answers {
            if let Ok(ip) = a.data.parse::<IpAddr>() {
                log.names
                    .entry(ip)
                    .or_default()
                    .insert(d.query.trim_end_matches('.').to_string());
            }
        }
    }
    for t in &report.tls {
        if let Some(s) = &t.sni {
            log.names.entry(t.dst).or_default().insert(s.clone());
        }
    }
    for h in &report.http {
        if let Some(s) = &h.host {
            log.names.entry(h.dst).or_default().insert(s.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_sums_windows() {
        let s = Series::build(vec![(3.0, 10), (1.0, 5), (2.0, 7)]);
        assert_eq!(s.sum(1.0, 2.0), 12);
        assert_eq!(s.sum(2.5, 9.0), 10);
        assert_eq!(s.sum(4.0, 9.0), 0);
        assert_eq!(s.total(), 22);
        assert_eq!(Series::default().sum(0.0, 1.0), 0);
    }
}
