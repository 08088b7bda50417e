//! `matador devices try`: the smoke test a lab runs after an app update.
//! On each phone: wake, launch the app, dismiss interruptions, open the
//! chat with the other phone and look for every selector of the app's
//! profile (the UI dump is saved when one is missing); optionally one marked
//! message each way with its receipt time.

use super::DeviceError;
use super::api::{Contact, Phone};
use super::interrupt;
use super::phone::ReceiptVia;
use super::uidump::{self, Selector};
use crate::capture::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How far a recorded time may be from the true one, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct UncertaintyS {
    /// The true time may be this much earlier.
    pub before: f64,
    /// The true time may be this much later.
    pub after: f64,
}

/// A message sent by `devices try --send`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrySent {
    /// The marked text.
    pub text: String,
    /// Host time of the send tap (unix s).
    pub t: f64,
}

/// Its receipt on the other phone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TryReceived {
    /// Host time (unix s, clock offset applied).
    pub t: f64,
    /// How it was seen.
    pub via: ReceiptVia,
    /// Uncertainty of `t` beyond the clock offset's.
    pub uncertainty_s: UncertaintyS,
}

/// One phone and app (`devices try --json` prints one per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TryReport {
    /// Phone profile id.
    pub phone: String,
    /// App id.
    pub app: String,
    /// ADB serial or address.
    pub serial: String,
    /// Android release (SDK).
    pub android: String,
    /// Every selector of the profile: found or not.
    pub selectors: BTreeMap<String, bool>,
    /// Interruptions dismissed (the selector that matched).
    pub interruptions: Vec<String>,
    /// The message this phone sent (`--send`).
    pub sent: Option<TrySent>,
    /// The message it received (`--send`).
    pub received: Option<TryReceived>,
    /// What failed (names the selector and the saved UI dump).
    pub error: Option<String>,
}

impl TryReport {
    /// Everything found and, if sent, received.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.selectors.values().all(|v| *v)
    }
}

/// Handles the interruptions in front of the app right after its launch
/// (the same rules and budget as every UI wait: [`interrupt::next`]),
/// until a dump shows none.
async fn dismiss(p: &Phone, app: &str) -> Result<Vec<String>, DeviceError> {
    let a = p.app(app)?.clone();
    let mut out = Vec::new();
    let mut budget = interrupt::Budget::default();
    for _ in 0..10 {
        let (xml, nodes) = p.device().dump().await?;
        if xml.is_empty() {
            continue;
        }
        let Some(action) = interrupt::next(&nodes, &a, &mut budget) else {
            // A foreign window is acted on at its second sighting.
            if budget.backs == 0 || nodes.iter().any(|n| n.package == a.package) {
                break;
            }
            continue;
        };
        p.device()
            .handle_interruption(&action, "the app's first screen")
            .await?;
        out.push(action.to_string());
    }
    Ok(out)
}

/// Launches, dismisses interruptions, opens the chat with `peer` and checks
/// every selector; the report of one phone.
pub async fn check(p: &Phone, app: &str, peer: &Contact) -> TryReport {
    let mut r = TryReport {
        phone: p.name().to_string(),
        app: app.to_string(),
        serial: p.device().adb.target.name(),
        android: String::new(),
        selectors: BTreeMap::new(),
        interruptions: Vec::new(),
        sent: None,
        received: None,
        error: None,
    };
    if let Err(e) = check_into(p, app, peer, &mut r).await {
        if let DeviceError::SelectorNotFound(m) = &e {
            r.selectors.insert(m.element.clone(), false);
        }
        r.error = Some(e.to_string());
    }
    r
}

async fn check_into(
    p: &Phone,
    app: &str,
    peer: &Contact,
    r: &mut TryReport,
) -> Result<(), DeviceError> {
    let a = p.app(app)?.clone();
    r.android = p.device().info(&[]).await?.android;
    p.device().wake_unlock().await?;
    p.clock_offset(5).await?;
    p.launch(app).await?;
    r.interruptions = dismiss(p, app).await?;
    for i in 0..a.ui.open_chat.navigate.len() {
        r.selectors.insert(format!("navigate-{}", i + 1), true);
    }
    p.open_chat(app, peer).await?;
    r.selectors.insert("text_field".into(), true);
    let (xml, nodes) = p.device().dump().await?;
    let send = |nodes: &[uidump::UiNode]| uidump::find(nodes, &a.ui.send_button).is_some();
    let mut found = send(&nodes);
    if !found {
        // Many apps show the send button only once there is text.
        let nodes = p.device().type_ready(&a, "matador", None).await?;
        found = send(&nodes);
        p.device()
            .sh_ok(&format!("input keyevent 123 {}", ["67"; 7].join(" ")))
            .await?;
    }
    r.selectors.insert("send_button".into(), found);
    if !found {
        let dump = p.save_dump(app, "send_button", &xml);
        return Err(DeviceError::SelectorNotFound(Box::new(
            super::SelectorMiss {
                device: p.name().to_string(),
                app: app.to_string(),
                element: "send_button".into(),
                selectors: selectors_text(&a.ui.send_button),
                after: Duration::ZERO,
                dump,
            },
        )));
    }
    Ok(())
}

fn selectors_text(s: &[Selector]) -> String {
    s.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// One marked message from `from` to `to` (the receiver's chat open; the
/// sender's opened again with `reopen`, its peer, when it went home): fills
/// `sent` of the sender's report and `received` of the receiver's.
pub async fn exchange(
    from: (&Phone, &mut TryReport),
    to: (&Phone, &mut TryReport),
    contact_of_sender: &Contact,
    reopen: Option<&Contact>,
    timeout: Duration,
) -> Result<(), DeviceError> {
    let (fp, fr) = from;
    let (tp, tr) = to;
    let app = fr.app.clone();
    if let Some(c) = reopen {
        fp.launch(&app).await?;
        fp.open_chat(&app, c).await?;
    }
    let text = format!(
        "matador try {app} {} {}->{}",
        Timestamp::from_f64(super::clock::host_now()),
        fp.name(),
        tp.name()
    );
    let (sent, base) = fp.send_watched(&app, &text, Some((tp, true))).await?;
    fr.sent = Some(TrySent {
        text: text.clone(),
        t: sent.ts.as_f64(),
    });
    let got = tp
        .receive_watched(
            &app,
            &text,
            timeout,
            &base.unwrap_or_default(),
            true,
            contact_of_sender,
        )
        .await?;
    let s = |ns: i64| ns as f64 / 1e9;
    tr.received = Some(TryReceived {
        t: got.ts.as_f64(),
        via: got.via,
        uncertainty_s: UncertaintyS {
            before: s(got.uncertainty.before),
            after: s(got.uncertainty.after),
        },
    });
    Ok(())
}
