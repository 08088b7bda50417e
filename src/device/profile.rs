//! Profiles: `device-profiles/phones/*.yaml` (how to reach a phone, its
//! accounts) and the type of the `ui:` section of
//! `device-profiles/apps/*.yaml` (how to drive an app: deep link or
//! navigation, selectors, time bounds). The app profile file itself is
//! read once, by [`crate::scenario::apps`].

use super::DeviceError;
use super::uidump::Selector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A phone profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneProfile {
    /// Profile id (`lab-a`).
    pub id: String,
    /// ADB serial as `adb devices` lists it (e.g. `127.0.0.1:5555` after `adb connect`).
    #[serde(default)]
    pub serial: Option<String>,
    /// Address for `adb connect` / direct TCP (`host:port`).
    #[serde(default)]
    pub address: Option<String>,
    /// adb server (`127.0.0.1:5037` by default, or `ANDROID_ADB_SERVER_PORT`).
    #[serde(default)]
    pub adb_server: Option<String>,
    /// Talk to adbd directly over TCP instead of through the server.
    #[serde(default)]
    pub direct: bool,
    /// Expected model (informative; checked by `matador devices`).
    #[serde(default)]
    pub model: Option<String>,
    /// Whether the phone is rooted (`su`): enables the per-UID firewall.
    #[serde(default)]
    pub rooted: bool,
    /// How other phones have this phone in their address book.
    #[serde(default)]
    pub display_name: Option<String>,
    /// This phone's account per app id (phone number or app id).
    #[serde(default)]
    pub accounts: BTreeMap<String, String>,
}

impl PhoneProfile {
    /// Loads a phone profile.
    pub fn load(path: &Path) -> Result<Self, DeviceError> {
        let text = std::fs::read_to_string(path).map_err(|e| DeviceError::Profile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let p: PhoneProfile = serde_yaml_ng::from_str(&text).map_err(|e| DeviceError::Profile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if p.serial.is_none() && p.address.is_none() {
            return Err(DeviceError::Profile {
                path: path.to_path_buf(),
                message: "needs `serial` or `address`".into(),
            });
        }
        Ok(p)
    }
}

/// How to open a conversation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenChat {
    /// Deep link with `{account}`, `{digits}` (account digits only) placeholders.
    #[serde(default)]
    pub uri: Option<String>,
    /// UI navigation: steps, each a list of alternative selectors to tap
    /// (`{contact}` is the peer's display name).
    #[serde(default)]
    pub navigate: Vec<Vec<Selector>>,
}

fn default_start() -> f64 {
    20.0
}
fn default_ui() -> f64 {
    10.0
}
fn default_receipt() -> f64 {
    60.0
}

/// The `ui:` section of an app profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppUi {
    /// Opening a chat.
    #[serde(default)]
    pub open_chat: OpenChat,
    /// The message input field (alternatives, tried in order).
    #[serde(default)]
    pub text_field: Vec<Selector>,
    /// The send button (alternatives).
    #[serde(default)]
    pub send_button: Vec<Selector>,
    /// Upper bound for the app to show its first screen (seconds).
    #[serde(default = "default_start")]
    pub start_timeout_s: f64,
    /// Upper bound for an element to appear (seconds).
    #[serde(default = "default_ui")]
    pub ui_timeout_s: f64,
    /// Upper bound for a message to arrive (seconds).
    #[serde(default = "default_receipt")]
    pub receipt_timeout_s: f64,
    /// Selectors of a received message bubble (UI fallback; `{text}`).
    #[serde(default)]
    pub message_bubble: Vec<Selector>,
    /// Buttons that dismiss the interruptions the app shows (update and
    /// permission dialogs, backup reminders, "what's new" sheets), tried in
    /// order; localized alternatives side by side.
    #[serde(default)]
    pub dismiss: Vec<Selector>,
}

/// What `ui: {}` gives: no selectors, the time bounds' defaults (a profile
/// without `ui:` gets the same, not zero time bounds).
impl Default for AppUi {
    fn default() -> Self {
        AppUi {
            open_chat: OpenChat::default(),
            text_field: Vec::new(),
            send_button: Vec::new(),
            start_timeout_s: default_start(),
            ui_timeout_s: default_ui(),
            receipt_timeout_s: default_receipt(),
            message_bubble: Vec::new(),
            dismiss: Vec::new(),
        }
    }
}

/// An app profile: the one type of `device-profiles/apps/<id>.yaml`,
/// loaded by [`crate::scenario::apps::AppProfiles`] (once per run). The
/// device layer takes its part: `id`, `package`, `activity` and
/// [`AppUi`].
pub use crate::scenario::apps::AppProfile;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn root() -> PathBuf {
        crate::source_dir().join("device-profiles")
    }

    #[test]
    fn repository_profiles_load() {
        let apps = crate::scenario::apps::AppProfiles::load_dir(&root().join("apps"))
            .unwrap()
            .apps;
        assert_eq!(apps.len(), 7);
        for a in &apps {
            assert!(!a.ui.text_field.is_empty(), "{}", a.id);
            assert!(!a.ui.send_button.is_empty(), "{}", a.id);
            assert!(
                a.ui.open_chat.uri.is_some() || !a.ui.open_chat.navigate.is_empty(),
                "{}",
                a.id
            );
        }
        for id in ["lab-a", "lab-b"] {
            let p = PhoneProfile::load(&root().join(format!("phones/{id}.yaml"))).unwrap();
            assert_eq!(p.id, id);
            for a in &apps {
                assert!(p.accounts.contains_key(&a.id), "{id}: {}", a.id);
            }
        }
    }

    #[test]
    fn bad_profiles_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.yaml");
        std::fs::write(&p, "id: x\nmodel: y\n").unwrap();
        let e = PhoneProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("x.yaml") && e.contains("serial"), "{e}");
        std::fs::write(&p, "id: x\nserial: s\nbogus: 1\n").unwrap();
        let e = PhoneProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("x.yaml") && e.contains("bogus"), "{e}");
    }
}
