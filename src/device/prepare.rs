//! `matador devices prepare`: checks that each phone is ready for a lab
//! campaign and prints the exact steps for what is missing.
//!
//! Checked over ADB (the same [`Device`] code as `matador devices`): USB
//! debugging authorised, airplane mode on with Wi-Fi on and connected to the
//! lab SSID (so every packet goes through the router, none through the
//! cellular network), no secure screen lock (automation must be able to
//! wake and unlock), the apps under test installed and opened at least once
//! (logged in: only a hint, ADB cannot see an account), matador able to read
//! notifications (`dumpsys notification --noredact`, the app allowed to
//! post them), the mock-location permission of the shell, and root when the
//! per-app firewall is wanted. Nothing is changed on the phone except
//! waking the screen.

use super::DeviceError;
use super::location::MockMethod;
use super::phone::Device;
use super::profile::AppProfile;
use serde::Serialize;

/// What the phones must satisfy.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// The lab SSID the phone must be connected to (`None`: any Wi-Fi).
    pub ssid: Option<String>,
    /// Apps that must be installed.
    pub apps: Vec<AppProfile>,
    /// The per-app firewall is wanted (needs root).
    pub firewall: bool,
}

/// One item of a phone's readiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// What was checked.
    pub name: String,
    /// Ready.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// Exact steps to fix it (empty when ok).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

/// A phone's readiness.
#[derive(Debug, Clone, Serialize)]
pub struct PhoneReadiness {
    /// ADB serial.
    pub serial: String,
    /// Items in check order.
    pub items: Vec<Item>,
}

impl PhoneReadiness {
    /// Whether every item is ok.
    pub fn ready(&self) -> bool {
        self.items.iter().all(|i| i.ok)
    }
}

fn ok(name: &str, detail: impl Into<String>) -> Item {
    Item {
        name: name.into(),
        ok: true,
        detail: detail.into(),
        steps: Vec::new(),
    }
}

fn missing(name: &str, detail: impl Into<String>, steps: Vec<String>) -> Item {
    Item {
        name: name.into(),
        ok: false,
        detail: detail.into(),
        steps,
    }
}

/// Android 9+ (the notification dump formats parsed, docs/devices.md; the
/// mock location by [`MockMethod`]).
async fn android_release(d: &Device) -> Result<Item, DeviceError> {
    let out = d
        .sh("getprop ro.build.version.release; getprop ro.build.version.sdk")
        .await?
        .stdout;
    let mut l = out.lines().map(str::trim);
    let (release, sdk) = (l.next().unwrap_or(""), l.next().unwrap_or(""));
    let detail = format!("Android {release} (SDK {sdk})");
    Ok(
        match sdk.parse::<u32>().ok().and_then(MockMethod::for_sdk) {
            Some(m) => ok(
                "android release",
                format!("{detail}, mock location by {m:?}"),
            ),
            None => missing(
                "android release",
                format!("{detail}: Android 9 (SDK 28) or newer is needed"),
                vec!["use a phone with Android 9 or newer".into()],
            ),
        },
    )
}

/// The package that sets the mock location holds the `MOCK_LOCATION` op
/// (the shell on Android 12+, Appium Settings on 9–11, installed).
async fn mock_location(d: &Device, serial: &str) -> Result<Item, DeviceError> {
    let Some(m) = MockMethod::for_sdk(d.sdk().await?) else {
        return Ok(missing("mock location", "Android older than 9", Vec::new()));
    };
    let pkg = m.package();
    if m == MockMethod::AppiumSettings && d.sh(&format!("pm path {pkg}")).await?.rc != 0 {
        return Ok(missing(
            "mock location",
            format!("Android 9–11 has no `cmd location`: {pkg} (Appium Settings) is not installed"),
            vec![
                "download settings_apk-debug.apk from github.com/appium/io.appium.settings releases".into(),
                format!("`adb -s {serial} install settings_apk-debug.apk`"),
                adb(serial, &format!("appops set {pkg} MOCK_LOCATION allow")),
            ],
        ));
    }
    let mode = d
        .sh(&format!("appops get {pkg} MOCK_LOCATION"))
        .await?
        .stdout;
    Ok(if mode.contains("MOCK_LOCATION: allow") {
        ok("mock location", format!("{pkg} may mock the location"))
    } else {
        missing(
            "mock location",
            format!("{pkg} is not the mock-location app"),
            vec![
                adb(serial, &format!("appops set {pkg} MOCK_LOCATION allow")),
                format!("or Developer options → Select mock location app → {pkg}"),
            ],
        )
    })
}

/// The ADBKeyboard IME, needed for any text that is not printable ASCII.
async fn ime(d: &Device, serial: &str) -> Result<Item, DeviceError> {
    let ime = super::typing::ADB_KEYBOARD;
    let listed = d.sh("ime list -a -s").await?.stdout;
    Ok(if listed.lines().any(|l| l.trim() == ime) {
        ok("input method", format!("{ime} installed"))
    } else {
        missing(
            "input method",
            format!("{ime} not installed: texts beyond printable ASCII cannot be typed"),
            vec![
                "install ADBKeyboard (github.com/senzhk/ADBKeyBoard): adb install ADBKeyboard.apk"
                    .into(),
                adb(serial, &format!("ime enable {ime}")),
            ],
        )
    })
}

/// Readiness of a phone the adb server lists in a state other than `device`.
pub fn not_usable(serial: &str, state: &str) -> PhoneReadiness {
    let steps = match state {
        "unauthorized" => vec![
            "unlock the phone and accept \"Allow USB debugging?\" (tick \"Always allow from this computer\")".into(),
            "if no prompt appears: Developer options → Revoke USB debugging authorisations, replug the cable".into(),
        ],
        "offline" => vec![
            "replug the USB cable (use the hub's data port, not a charge-only one)".into(),
            "`adb kill-server`, then `matador devices` again".into(),
        ],
        "missing" => vec![
            "connect the phone to the USB hub and enable Developer options → USB debugging".into(),
            "check that `adb devices` lists its serial".into(),
        ],
        other => vec![format!(
            "adb reports state {other:?}: replug the phone and check `adb devices`"
        )],
    };
    PhoneReadiness {
        serial: serial.into(),
        items: vec![missing(
            "usb debugging",
            format!("adb state {state}"),
            steps,
        )],
    }
}

fn adb(serial: &str, cmd: &str) -> String {
    format!("`adb -s {serial} shell {cmd}`")
}

/// Checks one phone that the adb server lists as `device` (authorised).
pub async fn check_phone(
    d: &Device,
    serial: &str,
    o: &PrepareOptions,
) -> Result<PhoneReadiness, DeviceError> {
    let mut items = vec![ok("usb debugging", "authorised")];

    let airplane = d.sh("settings get global airplane_mode_on").await?.stdout;
    if airplane.trim() == "1" {
        items.push(ok("airplane mode", "on (no cellular traffic)"));
    } else {
        items.push(missing(
            "airplane mode",
            format!("airplane_mode_on = {}", airplane.trim()),
            vec![
                "swipe down → Airplane mode on, then Wi-Fi on again (airplane mode keeps Wi-Fi when it is re-enabled)".into(),
                format!("or {}", adb(serial, "cmd connectivity airplane-mode enable")),
            ],
        ));
    }

    let wifi = d.sh("cmd wifi status").await?.stdout;
    let connected = wifi
        .lines()
        .find_map(|l| l.trim().strip_prefix("Wifi is connected to "))
        .map(|s| s.trim().trim_matches('"').to_string());
    match (&connected, &o.ssid) {
        (Some(s), Some(want)) if s == want => items.push(ok("wifi", format!("connected to {s}"))),
        (Some(s), None) => items.push(ok("wifi", format!("connected to {s}"))),
        (got, want) => {
            let want = want.clone().unwrap_or_else(|| "the lab SSID".into());
            let detail = match got {
                Some(s) => format!("connected to {s:?}, not {want:?}"),
                None if wifi.contains("Wifi is disabled") => "Wi-Fi is off".into(),
                None => "Wi-Fi is not connected".into(),
            };
            let mut steps = Vec::new();
            if wifi.contains("Wifi is disabled") {
                steps.push(format!("turn Wi-Fi on: {}", adb(serial, "svc wifi enable")));
            }
            steps.push(format!(
                "Settings → Network → Wi-Fi: join {want:?} with the lab passphrase; forget other networks"
            ));
            steps.push(format!(
                "in {want:?}'s settings: Privacy → Use device MAC (the router gives a static lease per MAC)"
            ));
            items.push(missing("wifi", detail, steps));
        }
    }

    items.push(android_release(d).await?);
    items.push(ime(d, serial).await?);

    match d.wake_unlock().await {
        Ok(()) => items.push(ok("screen lock", "wakes and unlocks without a PIN")),
        Err(e) => items.push(missing(
            "screen lock",
            format!("cannot unlock: {e}"),
            vec![
                "Settings → Security → Screen lock: None (or Swipe) — automation cannot type a PIN"
                    .into(),
                "Developer options → Stay awake (while charging)".into(),
            ],
        )),
    }

    for app in &o.apps {
        let name = format!("app {}", app.id);
        match d.installed_version(&app.package).await? {
            None => items.push(missing(
                &name,
                format!("{} not installed", app.package),
                vec![
                    format!("install {} from the Play Store (or `adb -s {serial} install FILE.apk`)", if app.name.is_empty() { &app.id } else { &app.name }),
                    format!("open it once and log in with this phone's account (device-profiles/phones/…: accounts.{})", app.id),
                ],
            )),
            Some(v) => {
                let pkg = d.sh(&format!("dumpsys package {}", app.package)).await?.stdout;
                if pkg.contains("notLaunched=true") {
                    items.push(missing(
                        &name,
                        format!("{} {v} installed but never opened (not logged in)", app.package),
                        vec![format!(
                            "open {} and log in with this phone's account (accounts.{} of its profile); allow its notifications",
                            app.package, app.id
                        )],
                    ));
                } else {
                    items.push(ok(&name, format!("{v} installed and opened (logged in? ADB cannot tell: check once by hand)")));
                }
                let ops = d
                    .sh(&format!("appops get {} POST_NOTIFICATION", app.package))
                    .await?
                    .stdout;
                if super::phone::notifications_denied_by(&ops) {
                    items.push(missing(
                        &format!("notifications {}", app.id),
                        format!("{} may not post notifications: {}", app.package, ops.trim()),
                        vec![
                            format!("Settings → Apps → {} → Notifications: on", app.package),
                            format!("or {}", adb(serial, &format!("appops set {} POST_NOTIFICATION allow", app.package))),
                        ],
                    ));
                }
            }
        }
    }

    let n = d.sh("dumpsys notification --noredact").await?;
    if n.rc == 0 && !n.stdout.contains("Permission Denial") {
        items.push(ok("notification access", "dumpsys notification readable"));
    } else {
        items.push(missing(
            "notification access",
            format!("dumpsys notification failed (rc {}): {}", n.rc, n.stderr.trim()),
            vec!["enable Developer options → USB debugging (Security settings) on Xiaomi/Huawei phones, which gate dumpsys".into()],
        ));
    }

    items.push(mock_location(d, serial).await?);

    if o.firewall {
        if d.has_root().await? {
            items.push(ok("root", "su gives uid 0 (per-app firewall possible)"));
        } else {
            items.push(missing(
                "root",
                "no root: the per-app firewall needs `su`".to_string(),
                vec![
                    "root the phone (e.g. Magisk) and grant Shell root access in the Magisk app".into(),
                    "or run the campaign without the firewall (its traffic then includes other apps' background noise)".into(),
                ],
            ));
        }
    }
    Ok(PhoneReadiness {
        serial: serial.into(),
        items,
    })
}
