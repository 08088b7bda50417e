//! The device layer's interface for the campaign orchestrator: one [`Phone`]
//! per phone profile, actions by app id, and every step written to the
//! measurement's `events.jsonl` on the host clock.
//!
//! ```text
//! let mut a = Phone::connect(&profile_a, &apps).await?;
//! a.prepare(&Prepare::default()).await?;            // wake, unlock, apps present, clock
//! a.set_measurement(Some(dir));                      // events.jsonl, UI dumps, videos
//! a.open_chat("signal", &Contact::of(&profile_b, "signal")?).await?;
//! let sent = a.send("signal", "hello").await?;       // SendEvent { ts, … }
//! let got = b.wait_received("signal", "hello", None).await?; // ReceiveEvent { ts, … }
//! ```

use super::clock::ClockEstimate;
use super::events::{DeviceEvent, EventKind, EventLog, TimeUncertainty, text_sha256};
use super::phone::{Device, DeviceInfo, Receipt, ReceiptBaseline, ReceiptVia, Sent};
use super::profile::{AppProfile, PhoneProfile};
use super::{DeviceError, clock};
use crate::capture::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Whom to open a chat with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// Display name in the address book (UI navigation).
    pub name: String,
    /// Account in the app (phone number or id; deep links).
    pub account: String,
}

impl Contact {
    /// The contact for `peer` in `app` (its `display_name` and account).
    pub fn of(peer: &PhoneProfile, app: &str) -> Result<Contact, DeviceError> {
        let account = peer
            .accounts
            .get(app)
            .cloned()
            .ok_or_else(|| DeviceError::Profile {
                path: PathBuf::from(format!("phone {}", peer.id)),
                message: format!("no account for app {app}"),
            })?;
        Ok(Contact {
            name: peer.display_name.clone().unwrap_or_else(|| peer.id.clone()),
            account,
        })
    }
}

/// What [`Phone::prepare`] does besides waking, unlocking, checking the apps
/// and estimating the clock offset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prepare {
    /// Rooted phones: allow only these apps' uids to send (cuts background
    /// noise). Ignored on phones whose profile is not rooted.
    pub firewall_apps: Vec<String>,
    /// Make apps believe they are here (lat, lon).
    pub mock_location: Option<(f64, f64)>,
    /// Round trips for the clock estimate (at least 3; default 9).
    pub clock_rounds: Option<u32>,
}

/// What [`Phone::prepare`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prepared {
    /// Model, versions, battery, root, app versions.
    pub info: DeviceInfo,
    /// Clock offset estimate.
    pub clock: ClockEstimate,
}

/// A sent message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendEvent {
    /// App id.
    pub app: String,
    /// Host time the send tap was issued (the message cannot leave earlier).
    pub ts: Timestamp,
    /// Host time the tap command returned.
    pub tap_done: Timestamp,
    /// SHA-256 of the text.
    pub text_sha256: String,
    /// Where the send really happened around `ts`: the tap lands while
    /// `input tap` runs, so up to `tap_done` later.
    pub uncertainty: TimeUncertainty,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiveEvent {
    /// App id.
    pub app: String,
    /// Host time of arrival: the notification's post time corrected by the
    /// clock offset, or (UI fallback) when it was seen.
    pub ts: Timestamp,
    /// Host time the poll saw it (`ts` ≤ this, up to the poll interval).
    pub seen: Timestamp,
    /// Notification or UI.
    pub via: ReceiptVia,
    /// Phone-clock post time, uncorrected.
    pub phone_posted: Option<Timestamp>,
    /// The clock estimate used.
    pub clock: Option<ClockEstimate>,
    /// SHA-256 of the text.
    pub text_sha256: String,
    /// Where the arrival really happened around `ts` ([`receipt_uncertainty`]).
    pub uncertainty: TimeUncertainty,
}

/// How long an app may take from a message's arrival to posting its
/// notification (decrypting, storing, building the notification): the
/// posting time (`mUpdateTimeMs`) is at most this much after the arrival.
/// An estimate for real apps (the simulator posts within milliseconds), not
/// a lab measurement.
pub const APP_POST_LAG_S: f64 = 0.5;

fn ns(s: f64) -> i64 {
    (s.max(0.0) * 1e9).round() as i64
}

/// The uncertainty of a send recorded at the start of its tap.
pub fn send_uncertainty(s: &Sent) -> TimeUncertainty {
    TimeUncertainty {
        before: 0,
        after: ns(s.host_after_s - s.host_before_s),
    }
}

/// The host time of a receipt and its uncertainty: a notification's posting
/// time (phone clock, corrected by the offset; never after the poll that saw
/// it) is at most [`APP_POST_LAG_S`] after the arrival and 1 ms before it
/// (ms resolution); a bubble seen in a UI dump arrived between the start of
/// the last dump that did not show it and the dump that did.
pub fn receipt_time(r: &Receipt, clock: Option<ClockEstimate>) -> (f64, TimeUncertainty) {
    match (r.phone_posted_s, clock) {
        (Some(p), Some(c)) => (
            c.to_host(p).min(r.host_seen_s),
            TimeUncertainty {
                before: ns(APP_POST_LAG_S),
                after: 1_000_000,
            },
        ),
        _ => (
            r.host_seen_s,
            TimeUncertainty {
                before: ns(r.host_seen_s - r.host_since_s),
                after: 0,
            },
        ),
    }
}

/// One phone, ready for the orchestrator.
#[derive(Debug)]
pub struct Phone {
    /// Its profile.
    pub profile: PhoneProfile,
    device: Device,
    apps: BTreeMap<String, AppProfile>,
    clock: Mutex<Option<ClockEstimate>>,
    measurement: Option<PathBuf>,
    log: Option<EventLog>,
    message_id: Mutex<Option<String>>,
    videos: AtomicU32,
    /// The notification (key, post time in ms) last reported per (app, text hash).
    seen: Mutex<BTreeMap<(String, String), SeenNotification>>,
}

/// A notification's key and posting time (ms).
type SeenNotification = (Option<String>, Option<i64>);

fn ts(host_s: f64) -> Timestamp {
    Timestamp::from_f64(host_s)
}

/// The phone that will receive a message, as [`Phone::send_watched`]
/// prepares it.
#[derive(Debug, Clone, Copy)]
pub struct Watched<'a> {
    /// The receiving phone.
    pub phone: &'a Phone,
    /// Its chat with the sender is open (count the chat's bubbles too).
    pub chat_open: bool,
    /// Send it to its home screen so that its app posts a notification
    /// (false: the app may not post any, its chat stays open for the
    /// bubble).
    pub go_home: bool,
}

impl Phone {
    /// Connects to the phone a profile describes (`adb connect` through the
    /// adb server when it has an address, or direct TCP) with the app
    /// profiles it will drive.
    pub async fn connect(
        profile: &PhoneProfile,
        apps: &[AppProfile],
    ) -> Result<Phone, DeviceError> {
        let device = Device::from_profile(profile).await?;
        Ok(Phone {
            profile: profile.clone(),
            device,
            apps: apps.iter().map(|a| (a.id.clone(), a.clone())).collect(),
            clock: Mutex::new(None),
            measurement: None,
            log: None,
            message_id: Mutex::new(None),
            videos: AtomicU32::new(0),
            seen: Mutex::new(BTreeMap::new()),
        })
    }

    /// The lower-level device (shell, dumps, firewall, …).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Device name used in events and errors (the profile id).
    pub fn name(&self) -> &str {
        &self.profile.id
    }

    /// The app profile for an id.
    pub fn app(&self, app: &str) -> Result<&AppProfile, DeviceError> {
        self.apps.get(app).ok_or_else(|| DeviceError::Profile {
            path: PathBuf::from(format!("phone {}", self.profile.id)),
            message: format!(
                "unknown app {app:?} (profiles: {})",
                self.apps.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Sets the measurement folder: events go to `<dir>/events.jsonl`, UI
    /// dumps of failures and screen recordings into `<dir>`. `None` stops
    /// recording.
    pub fn set_measurement(&mut self, dir: Option<&Path>) {
        self.measurement = dir.map(Path::to_path_buf);
        self.log = dir.map(|d| EventLog::new(&d.join("events.jsonl")));
    }

    /// Sets the message id written with the following events.
    pub fn set_message_id(&self, id: Option<&str>) {
        *self.message_id.lock().unwrap_or_else(|e| e.into_inner()) = id.map(str::to_string);
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), SeenNotification>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn diag(&self) -> Option<&Path> {
        self.measurement.as_deref()
    }

    /// Saves a UI dump into the measurement folder (if set); its path.
    pub fn save_dump(&self, app: &str, what: &str, xml: &str) -> Option<PathBuf> {
        self.device.save_dump(self.diag(), app, what, xml)
    }

    fn event(
        &self,
        at: Timestamp,
        app: &str,
        kind: EventKind,
        text: Option<&str>,
    ) -> Result<(), DeviceError> {
        self.event_u(at, app, kind, text, None)
    }

    fn event_u(
        &self,
        at: Timestamp,
        app: &str,
        kind: EventKind,
        text: Option<&str>,
        uncertainty: Option<TimeUncertainty>,
    ) -> Result<(), DeviceError> {
        let Some(log) = &self.log else { return Ok(()) };
        let clock = *self.clock.lock().unwrap_or_else(|e| e.into_inner());
        log.append(&DeviceEvent {
            ts: at,
            device: self.profile.id.clone(),
            app: app.to_string(),
            kind,
            message_id: self
                .message_id
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            text_sha256: text.map(text_sha256),
            clock_offset_ns: clock.map(|c| (c.offset_s * 1e9).round() as i64),
            clock_uncertainty_ns: clock.map(|c| (c.uncertainty_s * 1e9).round() as i64),
            uncertainty_ns: uncertainty,
        })
    }

    /// Wakes and unlocks the phone, checks every app with an account in the
    /// profile is installed, estimates the clock offset, and optionally sets
    /// the per-UID firewall and a mock location.
    pub async fn prepare(&self, opts: &Prepare) -> Result<Prepared, DeviceError> {
        self.device.wake_unlock().await?;
        let apps: Vec<AppProfile> = self.apps.values().cloned().collect();
        let info = self.device.info(&apps).await?;
        for app in self.apps.values() {
            if self.profile.accounts.contains_key(&app.id) {
                self.device.require_app(app).await?;
            }
        }
        let clock = self.clock_offset(opts.clock_rounds.unwrap_or(9)).await?;
        if self.profile.rooted && !opts.firewall_apps.is_empty() {
            let mut uids = Vec::new();
            for id in &opts.firewall_apps {
                uids.push(self.device.app_uid(&self.app(id)?.package).await?);
            }
            self.device.firewall_allow_only(&uids).await?;
        }
        if let Some((lat, lon)) = opts.mock_location {
            self.device.mock_location(lat, lon).await?;
        }
        Ok(Prepared { info, clock })
    }

    /// Estimates the clock offset (several `date` round trips, the tightest
    /// kept) and uses it for the following events.
    pub async fn clock_offset(&self, rounds: u32) -> Result<ClockEstimate, DeviceError> {
        let c = self.device.clock(rounds).await?;
        *self.clock.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
        Ok(c)
    }

    /// The last clock estimate.
    pub fn last_clock(&self) -> Option<ClockEstimate> {
        *self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts an app.
    pub async fn launch(&self, app: &str) -> Result<(), DeviceError> {
        let a = self.app(app)?;
        self.device.launch(a).await?;
        self.event(ts(clock::host_now()), app, EventKind::AppLaunch, None)
    }

    /// Opens the conversation with `contact` (deep link or UI navigation)
    /// and waits for its input field.
    pub async fn open_chat(&self, app: &str, contact: &Contact) -> Result<(), DeviceError> {
        let a = self.app(app)?;
        self.device
            .open_chat(a, &contact.account, &contact.name, self.diag())
            .await?;
        self.event(ts(clock::host_now()), app, EventKind::ChatOpen, None)
    }

    /// Types `text` into the open chat and taps send.
    pub async fn send(&self, app: &str, text: &str) -> Result<SendEvent, DeviceError> {
        self.send_watched(app, text, None)
            .await
            .map(|(sent, _)| sent)
    }

    /// Sends `text` while `receiver` — the phone that will get it, with its
    /// chat open when `.1` — is snapshotted and sent to its home screen (so
    /// its app posts a notification); the tap waits for both. Returns the
    /// send and the receiver's snapshot for [`Phone::receive_watched`].
    pub async fn send_watched(
        &self,
        app: &str,
        text: &str,
        receiver: Option<Watched<'_>>,
    ) -> Result<(SendEvent, Option<ReceiptBaseline>), DeviceError> {
        let a = self.app(app)?;
        let snap = async {
            let Some(w) = receiver else {
                return Ok(None);
            };
            let b = w.phone.snapshot(app, text, w.chat_open).await?;
            if w.go_home {
                w.phone.home().await?;
            }
            Ok::<_, DeviceError>(Some(b))
        };
        let (base, nodes) = tokio::join!(snap, self.device.type_ready(a, text, self.diag()));
        let (base, nodes) = (base?, nodes?);
        self.event(ts(clock::host_now()), app, EventKind::Type, Some(text))?;
        let sent = self.device.send_typed(a, &nodes, self.diag()).await?;
        let u = send_uncertainty(&sent);
        self.event_u(
            ts(sent.host_before_s),
            app,
            EventKind::SendTap,
            Some(text),
            Some(u),
        )?;
        self.event(ts(sent.host_after_s), app, EventKind::Sent, Some(text))?;
        // Nothing of the text reaches the receiver before its tap began:
        // a bubble's interval starts there at the earliest.
        let base = base.map(|mut b| {
            b.taken_s = Some(
                b.taken_s
                    .map_or(sent.host_before_s, |t| t.max(sent.host_before_s)),
            );
            b
        });
        let ev = SendEvent {
            app: app.to_string(),
            ts: ts(sent.host_before_s),
            tap_done: ts(sent.host_after_s),
            text_sha256: text_sha256(text),
            uncertainty: u,
        };
        Ok((ev, base))
    }

    /// Waits for `text` sent after `base` was taken: with the phone `away`
    /// on its home screen, a new notification for half the timeout, then the
    /// chat with `contact` opened again and polled for a new bubble; with
    /// the chat open, both from the start.
    pub async fn receive_watched(
        &self,
        app: &str,
        text: &str,
        timeout: Duration,
        base: &ReceiptBaseline,
        away: bool,
        contact: &Contact,
    ) -> Result<ReceiveEvent, DeviceError> {
        if !away {
            return self
                .wait_received_since(app, text, Some(timeout), base, true)
                .await;
        }
        let first = timeout / 2;
        match self
            .wait_received_since(app, text, Some(first), base, false)
            .await
        {
            Err(DeviceError::ReceiptTimeout { .. }) => {
                self.launch(app).await?;
                self.open_chat(app, contact).await?;
                self.wait_received_since(app, text, Some(timeout - first), base, true)
                    .await
            }
            r => r,
        }
    }

    /// What this phone shows of `text` now (take it before the peer sends
    /// it); `ui`: also count the open chat's bubbles (one UI dump).
    pub async fn snapshot(
        &self,
        app: &str,
        text: &str,
        ui: bool,
    ) -> Result<ReceiptBaseline, DeviceError> {
        let a = self.app(app)?;
        self.device.receipt_baseline(a, text, ui).await
    }

    /// Leaves the app for the home screen (it keeps running and posts
    /// notifications for every chat).
    pub async fn home(&self) -> Result<(), DeviceError> {
        self.device.home().await
    }

    /// Waits until `text` arrives in `app` (notification, else the open
    /// conversation); `timeout` defaults to the app profile's bound. A
    /// notification already reported for the same text is not reported
    /// again, so a repeated text waits for its new copy; use
    /// [`Phone::wait_received_since`] with a [`Phone::snapshot`] taken before
    /// the send to rule out the open chat's earlier bubbles too.
    pub async fn wait_received(
        &self,
        app: &str,
        text: &str,
        timeout: Option<Duration>,
    ) -> Result<ReceiveEvent, DeviceError> {
        let key = (app.to_string(), text_sha256(text));
        let base = ReceiptBaseline {
            notifications: self.lock_seen().get(&key).cloned().into_iter().collect(),
            bubbles: None,
            taken_s: None,
        };
        self.wait_received_since(app, text, timeout, &base, true)
            .await
    }

    /// Waits until `text` arrives, counting only what `base` did not show;
    /// `ui`: also poll the open chat.
    pub async fn wait_received_since(
        &self,
        app: &str,
        text: &str,
        timeout: Option<Duration>,
        base: &ReceiptBaseline,
        ui: bool,
    ) -> Result<ReceiveEvent, DeviceError> {
        let a = self.app(app)?;
        let timeout = timeout
            .unwrap_or_else(|| Duration::from_secs_f64(a.ui.receipt_timeout_s.clamp(1.0, 3600.0)));
        let r = self
            .device
            .wait_receipt_since(a, text, timeout, self.diag(), base, ui)
            .await?;
        if let Some(p) = r.phone_posted_s {
            let key = (app.to_string(), text_sha256(text));
            let seen = (r.key.clone(), Some((p * 1000.0).round() as i64));
            self.lock_seen().insert(key, seen);
        }
        let clock = self.last_clock();
        let (host_s, u) = receipt_time(&r, clock);
        self.event_u(ts(host_s), app, EventKind::Received, Some(text), Some(u))?;
        Ok(ReceiveEvent {
            app: app.to_string(),
            ts: ts(host_s),
            seen: ts(r.host_seen_s),
            via: r.via,
            phone_posted: r.phone_posted_s.map(ts),
            clock,
            text_sha256: text_sha256(text),
            uncertainty: u,
        })
    }

    /// Stops an app.
    pub async fn force_stop(&self, app: &str) -> Result<(), DeviceError> {
        let a = self.app(app)?;
        self.device.force_stop(a).await?;
        self.event(ts(clock::host_now()), app, EventKind::ForceStop, None)
    }

    /// Records the screen for `secs` seconds on its own ADB connection (run
    /// it concurrently with the actions to validate) and pulls the video into
    /// the measurement folder (or the working directory): returns its path.
    pub async fn screenrecord(&self, secs: u32) -> Result<PathBuf, DeviceError> {
        let n = self.videos.fetch_add(1, Ordering::SeqCst) + 1;
        let dir = self
            .measurement
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        let path = dir.join(format!("screen-{}-{n}.mp4", self.profile.id));
        self.device.screenrecord(secs, &path).await?;
        Ok(path)
    }

    /// Removes the per-UID firewall (rooted phones; a no-op otherwise).
    pub async fn release(&self) -> Result<(), DeviceError> {
        if self.profile.rooted {
            self.device.firewall_clear().await?;
        }
        Ok(())
    }
}
