//! Device control over ADB (adb_client): discover phones, drive messaging
//! apps by UI selectors, detect receipt by notifications, record the screen,
//! firewall per UID, mock the location and estimate each phone's clock offset.
//!
//! - [`api`]: what the campaign uses: [`Phone`] (connect, prepare, launch,
//!   open_chat, send → [`SendEvent`], wait_received → [`ReceiveEvent`],
//!   clock_offset, force_stop, screenrecord), writing [`events`] to the
//!   measurement's `events.jsonl` (docs/devices.md);
//! - [`adb`]: adb_client behind a worker thread with a watchdog relay and
//!   timeouts; host requests (`devices-l`, `connect`);
//! - [`phone`]: the actions on one phone ([`phone::Device`]);
//! - [`typing`]: how a text reaches the phone without ever being interpreted
//!   by its shell (`input text` escaping or the ADBKeyboard broadcast);
//! - [`uidump`], [`notif`]: parsers for `uiautomator dump` and
//!   `dumpsys notification`; [`profile`]: phone and app profiles;
//!   [`prepare`]: is each phone ready for a lab (`matador devices prepare`);
//!   [`clock`]: offset estimation.

pub mod adb;
pub mod api;
pub mod clock;
pub mod events;
pub mod interrupt;
pub mod keyguard;
pub mod location;
pub mod notif;
pub mod phone;
pub mod prepare;
pub mod profile;
pub mod shell_quote;
pub mod trial;
pub mod typing;
pub mod uidump;

pub use api::{Contact, Phone, Prepare, Prepared, ReceiveEvent, SendEvent};
pub use events::{DeviceEvent, EventKind, EventLog};

use std::path::PathBuf;
use std::time::Duration;

/// Errors of the device layer, naming the device (and app, file) concerned.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device is not connected (not listed, offline, refused).
    #[error("{device}: no device: {message}")]
    NoDevice {
        /// Device.
        device: String,
        /// Details.
        message: String,
    },
    /// The device did not authorise this host's key.
    #[error(
        "{device}: unauthorized: accept the \"Allow USB debugging?\" prompt on the phone (or check the adb key)"
    )]
    Unauthorized {
        /// Device.
        device: String,
    },
    /// The adb server failed or is unreachable.
    #[error("adb server {server}: {message}")]
    Server {
        /// Server address.
        server: String,
        /// Details.
        message: String,
    },
    /// adb_client reported an error.
    #[error("{device}: adb: {message}")]
    Adb {
        /// Device.
        device: String,
        /// Details.
        message: String,
    },
    /// A device call did not finish in time (the watchdog reset its connection).
    #[error("{device}: {what}: no answer within {after:?}")]
    Timeout {
        /// Device.
        device: String,
        /// What was attempted.
        what: String,
        /// The bound.
        after: Duration,
    },
    /// The app is not installed.
    #[error("{device}: app {package} is not installed")]
    AppNotInstalled {
        /// Device.
        device: String,
        /// Package.
        package: String,
    },
    /// No UI element matched (the last dump is saved for diagnosis).
    #[error("{0}")]
    SelectorNotFound(Box<SelectorMiss>),
    /// The message did not arrive in time.
    #[error("{device}: {app}: message not received within {after:?}")]
    ReceiptTimeout {
        /// Device.
        device: String,
        /// App id.
        app: String,
        /// The bound.
        after: Duration,
    },
    /// A device command failed.
    #[error("{device}: `{command}` failed (exit {rc}): {output}")]
    Command {
        /// Device.
        device: String,
        /// Command.
        command: String,
        /// Exit status.
        rc: i32,
        /// Its output.
        output: String,
    },
    /// The action needs root.
    #[error("{device}: not rooted (no working `su`)")]
    NotRooted {
        /// Device.
        device: String,
    },
    /// A profile file is invalid.
    #[error("{}: {message}", path.display())]
    Profile {
        /// File.
        path: PathBuf,
        /// Details.
        message: String,
    },
    /// Local I/O.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Details of a selector that matched nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorMiss {
    /// Device.
    pub device: String,
    /// App id.
    pub app: String,
    /// Which element.
    pub element: String,
    /// The selectors tried.
    pub selectors: String,
    /// How long it waited.
    pub after: Duration,
    /// Where the last UI dump was saved.
    pub dump: Option<PathBuf>,
}

impl std::fmt::Display for SelectorMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {} not found by {} within {:?}",
            self.device, self.app, self.element, self.selectors, self.after
        )?;
        if let Some(d) = &self.dump {
            write!(f, " (UI dump saved to {})", d.display())?;
        }
        Ok(())
    }
}
