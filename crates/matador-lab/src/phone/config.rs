//! Configuration of one simulated phone and of one app backend (YAML/JSON).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Errors loading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid YAML for this structure.
    #[error("{path}: {source}")]
    Yaml {
        /// File concerned.
        path: PathBuf,
        /// Cause (with line and column).
        source: serde_yaml_ng::Error,
    },
    /// A value is out of range or inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// File concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// How the simulated adbd treats host keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// No AUTH: answer CNXN at once (like a phone with `ro.adb.secure=0`).
    #[default]
    None,
    /// Ask for AUTH and accept any key (the user tapped "Allow").
    Accept,
    /// Ask for AUTH and never accept: `adb devices` shows `unauthorized`.
    Deny,
}

/// One contact in a simulated app's address book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimContact {
    /// Display name (notification title, chat list row).
    pub name: String,
    /// The contact's account in this app (phone number or app id).
    pub account: String,
}

/// One installed simulated app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimAppConfig {
    /// Which of the app's two simulated versions is installed (0 or 1).
    #[serde(default)]
    pub variant: usize,
    /// This phone's own account in the app.
    pub account: String,
    /// Address book.
    #[serde(default)]
    pub contacts: Vec<SimContact>,
    /// Backend `host:port` override (default: the app's real host name and port).
    #[serde(default)]
    pub server: Option<String>,
}

/// How `uiautomator dump` behaves. The default is a phone's:
/// AOSP's DumpCommand (cmds/uiautomator, `waitForIdle(1000, 1000 * 10)`)
/// waits for the screen to be unchanged for 1 s, gives up after 10 s with
/// `ERROR: could not get idle state.` on stderr, exit status 0 and the
/// previous dump file left in place; starting its process takes about a
/// second, a dump 1–3 s in all. [`UiDumpConfig::fast`] is for unit tests only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiDumpConfig {
    /// Shortest time a dump takes (ms).
    pub min_ms: u64,
    /// Longest time a dump takes without waiting for idle (ms).
    pub max_ms: u64,
    /// The screen must have been unchanged this long (ms).
    pub idle_ms: u64,
    /// Probability that a dump never sees the screen idle and fails.
    pub idle_failure: f64,
    /// How long a failing dump takes (ms).
    pub idle_timeout_ms: u64,
    /// Seed of the phone's random draws (mixed with its name).
    pub seed: u64,
}

impl Default for UiDumpConfig {
    fn default() -> Self {
        UiDumpConfig {
            min_ms: 1000,
            max_ms: 3000,
            idle_ms: 1000,
            idle_failure: 0.02,
            idle_timeout_ms: 10_000,
            seed: 1,
        }
    }
}

impl UiDumpConfig {
    /// Instant dumps that never fail: unit tests of other behaviour only.
    pub fn fast() -> Self {
        UiDumpConfig {
            min_ms: 40,
            max_ms: 40,
            idle_ms: 0,
            idle_failure: 0.0,
            idle_timeout_ms: 0,
            seed: 1,
        }
    }
}

/// A simulated phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneSimConfig {
    /// Name used in logs and the default serial.
    pub name: String,
    /// Where the ADB listener binds (the "USB cable"); port 0 picks one.
    #[serde(default = "default_adb_listen")]
    pub adb_listen: SocketAddr,
    /// `ro.product.manufacturer`.
    #[serde(default = "default_manufacturer")]
    pub manufacturer: String,
    /// `ro.product.model`.
    #[serde(default = "default_model")]
    pub model: String,
    /// `ro.product.device`.
    #[serde(default = "default_device")]
    pub device: String,
    /// `ro.build.version.release`.
    #[serde(default = "default_release")]
    pub android_release: String,
    /// `ro.build.version.sdk`.
    #[serde(default = "default_sdk")]
    pub sdk: u32,
    /// `ro.serialno`.
    #[serde(default)]
    pub serialno: Option<String>,
    /// Screen width in pixels.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Screen height in pixels.
    #[serde(default = "default_height")]
    pub height: u32,
    /// Screen density (dpi).
    #[serde(default = "default_density")]
    pub density: u32,
    /// Whether `su` exists.
    #[serde(default)]
    pub rooted: bool,
    /// AUTH behaviour.
    #[serde(default)]
    pub auth: AuthMode,
    /// Clock offset to the host in milliseconds at start.
    #[serde(default)]
    pub clock_skew_ms: f64,
    /// Clock drift in parts per million.
    #[serde(default)]
    pub clock_drift_ppm: f64,
    /// Battery level (percent).
    #[serde(default = "default_battery")]
    pub battery: u32,
    /// Connected Wi-Fi network name.
    #[serde(default = "default_ssid")]
    pub wifi_ssid: String,
    /// Network namespace (name under /run/netns or a path) for app traffic;
    /// none: the process's own namespace (loopback runs).
    #[serde(default)]
    pub netns: Option<String>,
    /// DNS server the phone's resolver asks (UDP 53 or any port).
    #[serde(default)]
    pub dns: Option<SocketAddr>,
    /// Static host entries consulted before DNS (like `/system/etc/hosts`).
    #[serde(default)]
    pub hosts: BTreeMap<String, IpAddr>,
    /// `uiautomator dump` timing and failures (default: a phone's).
    #[serde(default)]
    pub ui_dump: UiDumpConfig,
    /// How long an app takes from a message's arrival to posting its
    /// notification, drawn between these bounds (ms): decrypting, storing,
    /// building the notification. Default 50–300 ms.
    #[serde(default = "default_post_lag")]
    pub post_lag_ms: [u64; 2],
    /// Installed simulated apps by app id (`whatsapp`, `wechat`, …).
    #[serde(default)]
    pub apps: BTreeMap<String, SimAppConfig>,
    /// Android-like background traffic (connectivity checks, NTP, DNS, push).
    #[serde(default)]
    pub background: bool,
    /// Cold start time of apps in milliseconds (splash screen).
    #[serde(default = "default_cold_start")]
    pub cold_start_ms: u64,
    /// Start with the screen off and the keyguard shown.
    #[serde(default)]
    pub start_locked: bool,
    /// Appium Settings (`io.appium.settings`) is installed: the way to a
    /// mock location on Android 9–11 (`device::location`).
    #[serde(default)]
    pub appium_settings: bool,
    /// The ADBKeyboard IME (`com.android.adbkeyboard`) is installed. A phone
    /// out of the box has none, so the default is false: texts that are not
    /// printable ASCII cannot be typed until a lab installs it.
    #[serde(default)]
    pub adb_keyboard: bool,
    /// The phone's language and region (`persist.sys.locale`, e.g. `de-DE`):
    /// the texts of the interruptions follow it.
    #[serde(default = "default_locale")]
    pub locale: String,
    /// Interruptions real phones show (permission prompt, "what's new",
    /// the store in front, "isn't responding"); none by default.
    #[serde(default)]
    pub interruptions: super::dialog::InterruptionConfig,
    /// Address of the phone's `wlan0` as `ip addr` shows it (CIDR).
    #[serde(default = "default_wlan_addr")]
    pub wlan_addr: String,
    /// Default gateway as `ip route` shows it.
    #[serde(default = "default_wlan_gateway")]
    pub wlan_gateway: String,
}

fn default_post_lag() -> [u64; 2] {
    [50, 300]
}

fn default_locale() -> String {
    "en-US".into()
}

fn default_wlan_addr() -> String {
    "198.18.100.2/24".into()
}
fn default_wlan_gateway() -> String {
    "198.18.100.1".into()
}

fn default_adb_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
fn default_manufacturer() -> String {
    "Google".into()
}
fn default_model() -> String {
    "Pixel 6".into()
}
fn default_device() -> String {
    "oriole".into()
}
fn default_release() -> String {
    "13".into()
}
fn default_sdk() -> u32 {
    33
}
fn default_width() -> u32 {
    1080
}
fn default_height() -> u32 {
    2400
}
fn default_density() -> u32 {
    420
}
fn default_battery() -> u32 {
    87
}
fn default_ssid() -> String {
    "matador-lab".into()
}
fn default_cold_start() -> u64 {
    600
}

impl PhoneSimConfig {
    /// A phone with defaults and no apps.
    pub fn new(name: &str) -> Self {
        defaults(name)
    }

    /// Loads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let c: PhoneSimConfig =
            serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Yaml {
                path: path.to_path_buf(),
                source,
            })?;
        c.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(c)
    }

    /// Checks ranges and app ids.
    pub fn validate(&self) -> Result<(), String> {
        if !(200..=10_000).contains(&self.width) || !(200..=10_000).contains(&self.height) {
            return Err(format!(
                "screen {}x{} out of range",
                self.width, self.height
            ));
        }
        let d = &self.ui_dump;
        if d.min_ms > d.max_ms
            || !(0.0..=1.0).contains(&d.idle_failure)
            || self.post_lag_ms[0] > self.post_lag_ms[1]
        {
            return Err(format!(
                "ui_dump: min_ms {} > max_ms {}, idle_failure {} outside 0..1, or post_lag_ms {:?} reversed",
                d.min_ms, d.max_ms, d.idle_failure, self.post_lag_ms
            ));
        }
        if self.battery > 100 {
            return Err(format!("battery {} > 100", self.battery));
        }
        for (id, app) in &self.apps {
            if super::apps::app_def(id).is_none() {
                return Err(format!("unknown app id {id:?}"));
            }
            if app.variant > 1 {
                return Err(format!("app {id}: variant {} (0 or 1)", app.variant));
            }
        }
        Ok(())
    }

    /// The serial number the phone reports.
    pub fn serial(&self) -> String {
        self.serialno.clone().unwrap_or_else(|| {
            let h = self.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            format!("{:016X}", h)[..14].to_string()
        })
    }
}

fn defaults(name: &str) -> PhoneSimConfig {
    PhoneSimConfig {
        name: name.to_string(),
        adb_listen: default_adb_listen(),
        manufacturer: default_manufacturer(),
        model: default_model(),
        device: default_device(),
        android_release: default_release(),
        sdk: default_sdk(),
        serialno: None,
        width: default_width(),
        height: default_height(),
        density: default_density(),
        rooted: false,
        auth: AuthMode::None,
        clock_skew_ms: 0.0,
        clock_drift_ppm: 0.0,
        battery: default_battery(),
        wifi_ssid: default_ssid(),
        netns: None,
        dns: None,
        hosts: BTreeMap::new(),
        ui_dump: UiDumpConfig::default(),
        post_lag_ms: default_post_lag(),
        apps: BTreeMap::new(),
        background: false,
        cold_start_ms: default_cold_start(),
        start_locked: false,
        appium_settings: false,
        adb_keyboard: false,
        locale: default_locale(),
        interruptions: Default::default(),
        wlan_addr: default_wlan_addr(),
        wlan_gateway: default_wlan_gateway(),
    }
}

/// Fault knobs and addresses of one app backend relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendConfig {
    /// App id the backend serves (`whatsapp`, …).
    pub app: String,
    /// Addresses to listen on (TCP).
    pub listen: Vec<SocketAddr>,
    /// Extra delay before relaying a message, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Drop messages instead of relaying them.
    #[serde(default)]
    pub fail: bool,
    /// WeChat only: where `newgetdns` answers point (`host=ip` pairs); by
    /// default the address the client reached the backend on.
    #[serde(default)]
    pub newgetdns: BTreeMap<String, IpAddr>,
}
