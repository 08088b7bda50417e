//! Profiles: `device-profiles/phones/*.yaml` (how to reach a phone, its
//! accounts) and the `ui:` section of `device-profiles/apps/*.yaml` (how to
//! drive an app: deep link or navigation, selectors, time bounds).

use super::DeviceError;
use super::uidump::Selector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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

/// An app profile as the device layer needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppProfile {
    /// App id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Android package.
    pub package: String,
    /// Launcher activity (`pkg/.Activity`).
    #[serde(default)]
    pub activity: Option<String>,
    /// UI automation.
    #[serde(default)]
    pub ui: AppUi,
}

#[derive(Deserialize)]
struct AppFile {
    id: String,
    #[serde(default)]
    name: String,
    package: String,
    #[serde(default)]
    activity: Option<String>,
    #[serde(default)]
    ui: Option<serde_yaml_ng::Value>,
}

impl AppProfile {
    /// Loads an app profile (ignoring the `network:` section).
    pub fn load(path: &Path) -> Result<Self, DeviceError> {
        let text = std::fs::read_to_string(path).map_err(|e| DeviceError::Profile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let f: AppFile = serde_yaml_ng::from_str(&text).map_err(|e| DeviceError::Profile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let ui = match f.ui {
            None => AppUi::default(),
            Some(v) if v.as_mapping().is_some_and(|m| m.is_empty()) => AppUi::default(),
            Some(v) => serde_yaml_ng::from_value(v).map_err(|e| DeviceError::Profile {
                path: path.to_path_buf(),
                message: format!("ui: {e}"),
            })?,
        };
        Ok(AppProfile {
            id: f.id,
            name: f.name,
            package: f.package,
            activity: f.activity,
            ui,
        })
    }

    /// Loads every `*.yaml` in a directory, sorted by id.
    pub fn load_dir(dir: &Path) -> Result<Vec<Self>, DeviceError> {
        let rd = std::fs::read_dir(dir).map_err(|e| DeviceError::Profile {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        let mut v = paths
            .iter()
            .map(|p| AppProfile::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        crate::source_dir().join("device-profiles")
    }

    #[test]
    fn repository_profiles_load() {
        let apps = AppProfile::load_dir(&root().join("apps")).unwrap();
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
        std::fs::write(&p, "id: a\npackage: p\nui:\n  text_field: 3\n").unwrap();
        let e = AppProfile::load(&p).unwrap_err().to_string();
        assert!(e.contains("x.yaml") && e.contains("ui"), "{e}");
    }
}
