//! `analysis.json` (schema [`ANALYSIS_SCHEMA`]), the correlation's file: one
//! type per record, used by its writer ([`super::write_analysis`]) and by
//! every reader (the report, the campaign's index database, the paths
//! step, `matador replay` of a stored measurement).
//!
//! Reading is lenient where older or hand-made records may lack a field:
//! the correlation's counters and lists default to zero and empty. What
//! makes a server a correlation result — `app`, `ip`, `role`, `score` — is
//! required. Writing is unchanged by that leniency: the fields and their
//! order are the contract (docs/campaign-record.md, docs/report.md).

use super::Role;
use crate::analysis::model::CaptureReport;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Schema tag of `analysis.json`.
pub const ANALYSIS_SCHEMA: &str = "matador/analysis/1";

/// A server endpoint as the correlation found it (`analysis.json` →
/// `servers`).
///
/// This is not the replay's [`ServerRecord`](crate::analysis::model::ServerRecord)
/// (`captures[].servers`, and `matador replay --json`): that one is what
/// attribution found in one capture, with names and evidence only; this one
/// is a measurement's endpoint scored against its messages (hits, events,
/// baseline, odds, phones), with a different set of keys in a different
/// order in the file. One shape each, so one type each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CorrelatedServer {
    /// App id of the measurement.
    pub app: String,
    /// Server address.
    pub ip: IpAddr,
    /// Server port.
    #[serde(default)]
    pub port: u16,
    /// `"tcp"` or `"udp"`.
    #[serde(default)]
    pub proto: String,
    /// `messaging` (identified by correlation) or, for the app's other
    /// servers, `push`, `media`, `keep-alive`, `dns`, `auxiliary`.
    pub role: Role,
    /// Share of the measurement's events this endpoint explains beyond
    /// chance, in [0, 1]: per direction `(hits − expected) / (events −
    /// expected)`, the lower of the two (a messaging server carries both).
    pub score: f64,
    /// Events (sends + receives) with the message's bytes on this endpoint in their window.
    #[serde(default)]
    pub hits: u32,
    /// Events considered (sends + receives of the phones that used this endpoint).
    #[serde(default)]
    pub events: u32,
    /// Baseline window positions with traffic on this endpoint.
    #[serde(default)]
    pub baseline_hits: u32,
    /// Baseline window positions considered.
    #[serde(default)]
    pub baseline_windows: u32,
    /// Phones (device names) that talked to it.
    #[serde(default)]
    pub phones: Vec<String>,
    /// DNS / SNI / Host names seen for the address.
    #[serde(default)]
    pub names: Vec<String>,
    /// Evidence: correlation figures first, then attribution evidence.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// log10 of the odds that the endpoint carries the messages rather than
    /// meeting them by chance, over this measurement's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log10_odds: Option<f64>,
    /// The same over the campaign (all measurements of the app where the
    /// endpoint was used); equal to `log10_odds` for a lone measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_log10_odds: Option<f64>,
    /// Node the server was seen from, when the writer names one. matador's
    /// correlation does not (the report then takes the vantage from the
    /// captures that saw the address); other writers and hand-made records
    /// may, and the report honours it (docs/report.md, "Vantage").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Phone the server was seen from, when the writer names one (the
    /// report takes the phone's node); matador leaves it out, as `node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// What `analysis.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MeasurementAnalysis {
    /// [`ANALYSIS_SCHEMA`].
    pub schema: String,
    /// Measurement id (folder name); empty when a hand-made record leaves
    /// it out (readers know the folder).
    #[serde(default)]
    pub measurement: String,
    /// One replay report per capture file.
    #[serde(default)]
    pub captures: Vec<CaptureReport>,
    /// Servers found by correlation (messaging first, best score first).
    #[serde(default)]
    pub servers: Vec<CorrelatedServer>,
    /// Remarks (no events, no capture for a phone, damaged captures…).
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_made_server_reads_with_defaults_and_writes_back_without_them() {
        // As tests/fixtures/campaigns/small writes them: no counters, a node.
        let text = r#"{"app":"wechat","ip":"198.18.23.7","port":8080,"proto":"tcp",
            "names":["long.weixin.qq.com"],"evidence":["correlation:4/4 sends"],
            "role":"messaging","score":0.88,"node":"jp-1"}"#;
        let s: CorrelatedServer = serde_json::from_str(text).unwrap();
        assert_eq!(s.role, Role::Messaging);
        assert_eq!((s.hits, s.events, s.baseline_windows), (0, 0, 0));
        assert!(s.phones.is_empty() && s.log10_odds.is_none());
        assert_eq!(s.node.as_deref(), Some("jp-1"));
        assert_eq!(s.phone, None);
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["node"], "jp-1");
        assert!(back.get("phone").is_none());
    }

    #[test]
    fn a_server_without_role_or_score_is_not_a_correlation_result() {
        for text in [
            r#"{"app":"a","ip":"198.18.0.1","score":0.5}"#,
            r#"{"app":"a","ip":"198.18.0.1","role":"messaging"}"#,
        ] {
            let e = serde_json::from_str::<CorrelatedServer>(text).unwrap_err();
            assert!(e.to_string().contains("missing field"), "{e}");
        }
    }

    #[test]
    fn the_writer_keeps_key_order_and_leaves_node_and_phone_out() {
        let s = CorrelatedServer {
            app: "signal".into(),
            ip: "198.18.24.9".parse().unwrap(),
            port: 443,
            proto: "tcp".into(),
            role: Role::Messaging,
            score: 1.0,
            hits: 4,
            events: 4,
            baseline_hits: 0,
            baseline_windows: 10,
            phones: vec!["phone-a".into()],
            names: vec!["chat.signal.org".into()],
            evidence: vec!["sends:2/2".into()],
            log10_odds: Some(5.2),
            campaign_log10_odds: None,
            node: None,
            phone: None,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"app":"signal","ip":"198.18.24.9","port":443,"proto":"tcp","role":"messaging","score":1.0,"hits":4,"events":4,"baseline_hits":0,"baseline_windows":10,"phones":["phone-a"],"names":["chat.signal.org"],"evidence":["sends:2/2"],"log10_odds":5.2}"#
        );
    }

    #[test]
    fn an_analysis_without_measurement_id_reads() {
        let a: MeasurementAnalysis =
            serde_json::from_str(r#"{"schema":"matador/analysis/1","servers":[]}"#).unwrap();
        assert!(a.measurement.is_empty() && a.captures.is_empty());
    }
}
