//! What a campaign needs from the world, as small traits: phones
//! ([`PhoneControl`]), vantages/tunnels ([`Vantage`]), capture points
//! ([`CapturePoint`]) and extra steps ([`StepHook`], for paths and probes).
//!
//! The real implementations drive `device/` and `net/` (never `lab/`); the
//! state machine is tested against in-process fakes. Calls are blocking: the
//! runner calls each one on a worker thread with the step's time bound, so a
//! hung device or node fails the step instead of the campaign.

use std::path::Path;
use std::time::Duration;

/// A failed call: what went wrong, and whether the node is to blame (the
/// runner then fails over to the country's next node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EnvError {
    /// What went wrong (names the device, node or file).
    pub message: String,
    /// The remote node failed (tunnel down, no connectivity, DNS broken).
    pub node_failed: bool,
}

impl EnvError {
    /// An ordinary failure.
    pub fn new(message: impl Into<String>) -> Self {
        EnvError {
            message: message.into(),
            node_failed: false,
        }
    }

    /// A failure of the node itself.
    pub fn node(message: impl Into<String>) -> Self {
        EnvError {
            message: message.into(),
            node_failed: true,
        }
    }
}

/// Facts about a phone recorded as provenance.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhoneFacts {
    /// Model.
    pub model: String,
    /// Android release.
    pub android: String,
    /// Version of the app under test.
    pub app_version: Option<String>,
    /// Phone clock minus host clock, seconds.
    pub clock_offset_s: f64,
    /// Uncertainty of that offset, seconds.
    pub clock_uncertainty_s: f64,
}

/// A recorded host time (unix s) and, when the phone layer can say, how far
/// the true moment may be from it (`events.jsonl`'s `uncertainty_ns`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamp {
    /// Host time, unix seconds.
    pub t: f64,
    /// Interval around `t` holding the true time.
    pub uncertainty: Option<crate::device::events::TimeUncertainty>,
}

impl From<f64> for Stamp {
    fn from(t: f64) -> Self {
        Stamp::bare(t)
    }
}

impl Stamp {
    /// A time without a known uncertainty.
    pub fn bare(t: f64) -> Self {
        Stamp {
            t,
            uncertainty: None,
        }
    }
}

/// The phones.
pub trait PhoneControl: Send + Sync {
    /// Wakes and unlocks the phone, checks the app, sets the mock location
    /// of `country` and the firewall (only the app and its system services
    /// may talk), measures the clock offset.
    fn prepare(&self, phone: &str, app: &str, country: &str) -> Result<PhoneFacts, EnvError>;
    /// Launches the app and opens the chat with `peer` (a phone profile id).
    fn open_chat(&self, phone: &str, app: &str, peer: &str) -> Result<(), EnvError>;
    /// Types and sends a message; returns the host time of the send tap (offset applied).
    fn send(&self, phone: &str, app: &str, text: &str) -> Result<f64, EnvError>;
    /// Waits for a message to arrive; returns the host time it was first seen.
    fn wait_receive(
        &self,
        phone: &str,
        app: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<f64, EnvError>;
    /// [`PhoneControl::send`] with the time's uncertainty (default: none known).
    fn send_stamped(&self, phone: &str, app: &str, text: &str) -> Result<Stamp, EnvError> {
        self.send(phone, app, text).map(Stamp::bare)
    }
    /// [`PhoneControl::wait_receive`] with the time's uncertainty (default:
    /// none known).
    fn wait_receive_stamped(
        &self,
        phone: &str,
        app: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<Stamp, EnvError> {
        self.wait_receive(phone, app, text, timeout)
            .map(Stamp::bare)
    }
    /// Stops the action in flight on `phone` after its step's deadline
    /// passed (its adb streams closed, the app force-stopped if needed) and
    /// returns only once that action has ended, so a retry cannot race it;
    /// `limit` bounds the wait (a phone that is gone is not waited on).
    /// `Some(note)`: a phone involved is gone, and why.
    /// Default: nothing to stop (in-process fakes end with their thread).
    fn cancel(&self, phone: &str, limit: Duration) -> Result<Option<String>, EnvError> {
        let _ = (phone, limit);
        Ok(None)
    }
    /// The interruptions `phone` handled since the last call (what was
    /// done: a dialog dismissed, BACK pressed), for the journal.
    /// Default: none (fakes show no dialogs).
    fn take_interruptions(&self, phone: &str) -> Vec<String> {
        let _ = phone;
        Vec::new()
    }
    /// Force-stops the app and clears the firewall.
    fn finish(&self, phone: &str, app: &str) -> Result<(), EnvError>;
    /// Saves diagnostics (UI dump, screenshot) into `dir` after a failure.
    fn diagnostics(&self, phone: &str, dir: &Path) -> Result<(), EnvError>;
    /// Starts recording the screen, for at most `limit`, into `file` (which
    /// exists once [`PhoneControl::stop_screenrecord`] returns). Default: not
    /// supported.
    fn start_screenrecord(
        &self,
        phone: &str,
        limit: Duration,
        file: &Path,
    ) -> Result<(), EnvError> {
        let _ = (limit, file);
        Err(EnvError::new(format!(
            "{phone}: screen recording not supported"
        )))
    }
    /// Ends a running recording early and waits until its file is complete
    /// locally. Idempotent (no recording: nothing to do).
    fn stop_screenrecord(&self, phone: &str) -> Result<(), EnvError> {
        let _ = phone;
        Ok(())
    }
}

/// The vantages: tunnels from the router to the remote nodes.
pub trait Vantage: Send + Sync {
    /// Routes the phone's traffic through `node` (tunnel, policy routing, NAT).
    fn connect(&self, phone: &str, node: &str) -> Result<(), EnvError>;
    /// Checks connectivity and DNS through the node (errors are node failures).
    fn check(&self, phone: &str, node: &str) -> Result<(), EnvError>;
    /// Removes the phone's routing (idempotent: called on every teardown).
    fn disconnect(&self, phone: &str) -> Result<(), EnvError>;
}

/// The capture points: the router per phone and the nodes.
pub trait CapturePoint: Send + Sync {
    /// Starts capturing `point` (`router-<phone>` or `node-<node>`) into a
    /// file that [`CapturePoint::stop`] completes at `file`.
    fn start(&self, point: &str, file: &Path) -> Result<(), EnvError>;
    /// Stops the capture and makes sure `file` is complete locally (fetching
    /// it from the node if needed). Idempotent.
    fn stop(&self, point: &str) -> Result<(), EnvError>;
}

/// What an extra step did, for the journal: the nodes it measured from
/// and how it reached them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Nodes that measured (in order).
    pub nodes: Vec<String>,
    /// How the nodes were reached (`agent`: the node agent's ops).
    pub via: String,
    /// Counts and the like.
    pub detail: Option<String>,
}

impl StepReport {
    /// An empty report for a step reaching its nodes `via`.
    pub fn via(via: impl Into<String>) -> Self {
        StepReport {
            via: via.into(),
            ..StepReport::default()
        }
    }
}

/// An extra step of a message measurement (paths, probes), given the
/// measurement folder after analysis. `measurement.sender_nodes[0]` and
/// `receiver_nodes[0]` are the nodes that carried the measurement (after
/// failover; [`super::runner::carried_by`]), not the countries' first
/// nodes.
pub trait StepHook: Send + Sync {
    /// How the step reaches the nodes, journalled with it (the real steps:
    /// `agent`).
    fn via(&self) -> &'static str {
        "in-process"
    }
    /// Runs the step; results go into the folder (`traces/`, `probes/`).
    fn run(
        &self,
        dir: &Path,
        measurement: &super::plan::PlannedMeasurement,
    ) -> Result<StepReport, EnvError>;
}
