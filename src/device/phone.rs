//! Actions on one phone: info, wake/unlock, launch, open a chat, type, tap
//! send, detect receipt, force-stop, screen recording, per-UID firewall,
//! mock location, clock offset. Waits are polls with upper bounds (from the
//! app profile), never fixed sleeps.

use super::adb::{Adb, ShellOutput, Target, connect_device, default_server};
use super::clock::{self, ClockEstimate};
use super::interrupt;
use super::keyguard::{self, KeyguardState};
use super::location::{self, APPIUM_SETTINGS, MockMethod};
use super::notif;
use super::profile::{AppProfile, PhoneProfile};
use super::shell_quote::quote;
use super::typing::{self, ADB_KEYBOARD, Typing};
use super::uidump::{self, Selector, UiNode};
use super::{DeviceError, SelectorMiss};
use serde::Serialize;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CMD_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(250);
/// Where `uiautomator dump` writes.
const DUMP_FILE: &str = "/sdcard/window_dump.xml";
/// A UI wait fails only after this many complete dumps, however short its
/// bound: one dump that never sees the screen idle takes ~10 s on a phone.
const MIN_DUMPS: u32 = 2;

/// What `matador devices` shows about a phone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// Serial or address.
    pub device: String,
    /// Manufacturer and model.
    pub model: String,
    /// Android release (SDK).
    pub android: String,
    /// Battery level in percent.
    pub battery: Option<u32>,
    /// Screen size.
    pub screen: String,
    /// Screen on.
    pub awake: bool,
    /// The lock screen stands in front of the apps (`None`: the phone's
    /// `dumpsys window` holds none of the markers [`keyguard::parse`] knows).
    pub locked: Option<bool>,
    /// Wi-Fi state line.
    pub wifi: String,
    /// `su` works.
    pub root: bool,
    /// Installed versions of the apps under test (id → version, `None` if absent).
    pub apps: Vec<(String, Option<String>)>,
}

/// A message that was sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sent {
    /// App id.
    pub app: String,
    /// Host time just before the send tap (unix s).
    pub host_before_s: f64,
    /// Host time when the tap command returned (unix s).
    pub host_after_s: f64,
}

/// How a receipt was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptVia {
    /// A posted notification.
    Notification,
    /// The message in the open conversation.
    Ui,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    /// App id.
    pub app: String,
    /// How it was detected.
    pub via: ReceiptVia,
    /// Host time when the poll saw it (unix s).
    pub host_seen_s: f64,
    /// Host time since which it may have been there: the start of the
    /// last look that did not show it (or of the wait).
    pub host_since_s: f64,
    /// Phone time the notification was posted (unix s), if known.
    pub phone_posted_s: Option<f64>,
    /// The notification's key, if by notification.
    pub key: Option<String>,
}

/// What a receiving phone showed of a text before it was sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReceiptBaseline {
    /// Notifications that already showed it: (key, posting time in ms).
    pub notifications: Vec<(Option<String>, Option<i64>)>,
    /// Bubbles with it in the open chat (`None`: no chat on screen).
    pub bubbles: Option<usize>,
    /// Host time (unix s) the observation began: taken before the send,
    /// the text cannot have arrived earlier, so a bubble's interval starts
    /// here until a later dump of the chat shows it absent. `None`: no
    /// observation (the wait's own start is the bound then).
    pub taken_s: Option<f64>,
}

/// The selectors of a message bubble with `text`.
fn bubble_selectors(app: &AppProfile, text: &str) -> Vec<Selector> {
    if app.ui.message_bubble.is_empty() {
        return vec![
            Selector {
                text: Some(text.to_string()),
                ..Default::default()
            },
            Selector {
                content_desc: Some(text.to_string()),
                ..Default::default()
            },
        ];
    }
    app.ui
        .message_bubble
        .iter()
        .map(|s| s.fill(&[("text", text)]))
        .collect()
}

/// Bubbles of `app` showing `text` (the input field excluded).
fn count_bubbles(app: &AppProfile, text: &str, nodes: &[UiNode]) -> usize {
    let sels = bubble_selectors(app, text);
    let field = uidump::find(nodes, &app.ui.text_field).map(|f| f.bounds);
    nodes
        .iter()
        .filter(|n| n.package == app.package && Some(n.bounds) != field)
        .filter(|n| sels.iter().any(|s| s.matches(n)))
        .count()
}

/// Reads `appops get … POST_NOTIFICATION` output: denied when the op's
/// mode is `ignore` or `deny` (AOSP `AppOpsService` shell command format,
/// `<OP>: <mode>` per line, optionally followed by `; time=…`).
pub fn notifications_denied_by(appops_get: &str) -> bool {
    appops_get.lines().any(|l| {
        let Some((op, rest)) = l.split_once(':') else {
            return false;
        };
        let mode = rest.split(';').next().unwrap_or("").trim();
        op.trim() == "POST_NOTIFICATION" && matches!(mode, "ignore" | "deny")
    })
}

/// One phone.
#[derive(Debug)]
pub struct Device {
    /// ADB access.
    pub adb: Adb,
    /// Name for messages and file names.
    pub name: String,
    /// Interruptions handled while waiting for elements, oldest first
    /// (what was done); drained by [`Device::take_interruptions`].
    handled: std::sync::Mutex<Vec<String>>,
}

fn now() -> f64 {
    clock::host_now()
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Collects output and notes when its first byte arrived (host clock).
#[derive(Default)]
struct FirstByte {
    buf: Vec<u8>,
    first: Option<f64>,
}

impl std::io::Write for FirstByte {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.first.is_none() && !b.is_empty() {
            self.first = Some(now());
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Puts a profile id in front of the serial an opening error names.
fn rename(e: DeviceError, id: &str) -> DeviceError {
    let n = |d: String| format!("{id} ({d})");
    match e {
        DeviceError::NoDevice { device, message } => DeviceError::NoDevice {
            device: n(device),
            message,
        },
        DeviceError::Unauthorized { device } => DeviceError::Unauthorized { device: n(device) },
        DeviceError::Adb { device, message } => DeviceError::Adb {
            device: n(device),
            message,
        },
        DeviceError::Timeout {
            device,
            what,
            after,
        } => DeviceError::Timeout {
            device: n(device),
            what,
            after,
        },
        DeviceError::Server { server, message } => DeviceError::Server {
            server,
            message: format!("{id}: {message}"),
        },
        other => other,
    }
}

impl Device {
    /// Opens a device by target.
    pub async fn open(target: Target) -> Result<Device, DeviceError> {
        let name = target.name();
        Ok(Device {
            adb: Adb::open(target).await?,
            name,
            handled: std::sync::Mutex::default(),
        })
    }

    /// Opens the device a phone profile describes (`adb connect` first when
    /// only an address is given).
    pub async fn from_profile(p: &PhoneProfile) -> Result<Device, DeviceError> {
        let bad = |m: String| DeviceError::Profile {
            path: PathBuf::from(format!("phone {}", p.id)),
            message: m,
        };
        let server: SocketAddrV4 = match &p.adb_server {
            Some(s) => s
                .parse()
                .map_err(|_| bad(format!("adb_server {s:?} is not ip:port")))?,
            None => default_server(),
        };
        let target = if p.direct {
            let a = p
                .address
                .as_ref()
                .or(p.serial.as_ref())
                .ok_or_else(|| bad("direct needs address".into()))?;
            Target::Direct(
                a.parse()
                    .map_err(|_| bad(format!("address {a:?} is not ip:port")))?,
            )
        } else {
            if let Some(a) = &p.address {
                let addr: SocketAddr = a
                    .parse()
                    .map_err(|_| bad(format!("address {a:?} is not ip:port")))?;
                connect_device(server, addr)
                    .await
                    .map_err(|e| rename(e, &p.id))?;
            }
            Target::Server {
                server,
                serial: p.serial.clone().or(p.address.clone()).unwrap_or_default(),
            }
        };
        let mut d = Device::open(target).await.map_err(|e| rename(e, &p.id))?;
        let full = format!("{} ({})", p.id, d.adb.target.name());
        d.adb.set_name(&full);
        d.name = p.id.clone();
        Ok(d)
    }

    /// Runs a command (any exit status).
    pub async fn sh(&self, cmd: &str) -> Result<ShellOutput, DeviceError> {
        self.adb.shell(cmd, CMD_TIMEOUT).await
    }

    /// Runs a command that must succeed; returns stdout.
    pub async fn sh_ok(&self, cmd: &str) -> Result<String, DeviceError> {
        let o = self.sh(cmd).await?;
        if o.rc != 0 {
            return Err(DeviceError::Command {
                device: self.name.clone(),
                command: cmd.to_string(),
                rc: o.rc,
                output: format!("{}{}", o.stdout, o.stderr).trim().to_string(),
            });
        }
        Ok(o.stdout)
    }

    /// The installed version of a package, `None` if absent.
    pub async fn installed_version(&self, package: &str) -> Result<Option<String>, DeviceError> {
        let out = self
            .sh(&format!("dumpsys package {}", quote(package)))
            .await?
            .stdout;
        Ok(out
            .lines()
            .find_map(|l| l.trim().strip_prefix("versionName="))
            .map(|v| v.trim().to_string()))
    }

    /// Fails with `AppNotInstalled` unless the app is installed; returns its version.
    pub async fn require_app(&self, app: &AppProfile) -> Result<String, DeviceError> {
        self.installed_version(&app.package)
            .await?
            .ok_or_else(|| DeviceError::AppNotInstalled {
                device: self.name.clone(),
                package: app.package.clone(),
            })
    }

    /// Whether `su` gives root.
    pub async fn has_root(&self) -> Result<bool, DeviceError> {
        Ok(self.sh("su -c id").await?.stdout.contains("uid=0("))
    }

    /// Model, Android version, battery, screen, Wi-Fi, root and app versions.
    pub async fn info(&self, apps: &[AppProfile]) -> Result<DeviceInfo, DeviceError> {
        // One round trip for the basics.
        let script = "getprop ro.product.manufacturer; getprop ro.product.model; getprop ro.build.version.release; getprop ro.build.version.sdk; echo @@; dumpsys battery; echo @@; wm size; echo @@; dumpsys power; echo @@; dumpsys window; echo @@; cmd wifi status";
        let out = self.sh(script).await?.stdout;
        let parts: Vec<&str> = out.split("@@\n").collect();
        let props: Vec<&str> = parts
            .first()
            .map(|p| p.lines().collect())
            .unwrap_or_default();
        let get = |i: usize| {
            props
                .get(i)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let battery = parts.get(1).and_then(|b| {
            b.lines()
                .find_map(|l| l.trim().strip_prefix("level:"))
                .and_then(|v| v.trim().parse().ok())
        });
        let screen = parts
            .get(2)
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.trim().strip_prefix("Physical size:"))
            })
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let awake = parts
            .get(3)
            .is_some_and(|p| p.contains("mWakefulness=Awake"));
        let locked = parts
            .get(4)
            .and_then(|w| keyguard::parse(w))
            .map(|k| k.blocks_ui());
        let wifi = parts
            .get(5)
            .and_then(|w| w.lines().rfind(|l| l.contains("Wifi is")))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let root = self.has_root().await?;
        let mut versions = Vec::new();
        for a in apps {
            versions.push((a.id.clone(), self.installed_version(&a.package).await?));
        }
        Ok(DeviceInfo {
            device: self.name.clone(),
            model: format!("{} {}", get(0), get(1)),
            android: format!("{} (SDK {})", get(2), get(3)),
            battery,
            screen,
            awake,
            locked,
            wifi,
            root,
            apps: versions,
        })
    }

    /// Screen awake, and the keyguard's state (an error when the phone's
    /// `dumpsys window` has no keyguard state this parser knows).
    async fn lock_state(&self) -> Result<(bool, KeyguardState), DeviceError> {
        let p = self.sh("dumpsys power").await?.stdout;
        let w = self.sh("dumpsys window").await?.stdout;
        let k = keyguard::parse(&w).ok_or_else(|| DeviceError::Command {
            device: self.name.clone(),
            command: "dumpsys window".into(),
            rc: 0,
            output: "no keyguard state in the output (looked for the KeyguardServiceDelegate and KeyguardStateMonitor blocks and mDreamingLockscreen=)".into(),
        })?;
        Ok((p.contains("mWakefulness=Awake"), k))
    }

    /// Wakes the screen and dismisses an insecure keyguard.
    pub async fn wake_unlock(&self) -> Result<(), DeviceError> {
        self.sh_ok("input keyevent KEYCODE_WAKEUP").await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (awake, k) = self.lock_state().await?;
            let locked = k.blocks_ui();
            if awake && !locked {
                return Ok(());
            }
            if locked && k.secure == Some(true) {
                return Err(DeviceError::Command {
                    device: self.name.clone(),
                    command: "wake/unlock".into(),
                    rc: 1,
                    output: "a secure lock screen (PIN, pattern or password) is set: automation needs Screen lock \"None\" or \"Swipe\"".into(),
                });
            }
            if Instant::now() > deadline {
                return Err(DeviceError::Command {
                    device: self.name.clone(),
                    command: "wake/unlock".into(),
                    rc: 1,
                    output: format!(
                        "awake={awake} locked={locked} (a secure lock screen must be disabled for automation)"
                    ),
                });
            }
            if !awake {
                self.sh_ok("input keyevent KEYCODE_WAKEUP").await?;
            } else {
                self.sh("wm dismiss-keyguard").await?;
                self.sh_ok("input keyevent 82").await?;
                let size = self.sh("wm size").await?.stdout;
                if let Some((w, h)) = size
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("Physical size:"))
                    .and_then(|s| s.trim().split_once('x'))
                {
                    let (w, h): (i32, i32) = (w.parse().unwrap_or(1080), h.parse().unwrap_or(2400));
                    self.sh_ok(&format!(
                        "input swipe {} {} {} {} 200",
                        w / 2,
                        h * 4 / 5,
                        w / 2,
                        h / 5
                    ))
                    .await?;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The current UI: raw XML and nodes; both empty when the dump failed
    /// (screen off, or never idle) — never an earlier screen. AOSP's
    /// DumpCommand (cmds/uiautomator) reports `ERROR: could not get idle
    /// state.` on stderr with exit status 0 and leaves the previous file in
    /// place, so the file is removed first and only a `<hierarchy` counts.
    pub async fn dump(&self) -> Result<(String, Vec<UiNode>), DeviceError> {
        let out = self
            .sh(&format!(
                "rm -f {DUMP_FILE}; uiautomator dump {DUMP_FILE} >/dev/null 2>&1; cat {DUMP_FILE} 2>/dev/null"
            ))
            .await?;
        if !out.stdout.contains("<hierarchy") {
            return Ok((String::new(), Vec::new()));
        }
        let nodes = uidump::parse(&out.stdout);
        Ok((out.stdout, nodes))
    }

    /// Saves a UI dump as `ui-<phone>-<app>-<what>.xml` into `diag`.
    pub fn save_dump(
        &self,
        diag: Option<&Path>,
        app: &str,
        what: &str,
        xml: &str,
    ) -> Option<PathBuf> {
        let dir = diag?;
        std::fs::create_dir_all(dir).ok()?;
        let path = dir.join(format!(
            "ui-{}-{}-{}.xml",
            sanitize(&self.name),
            sanitize(app),
            sanitize(what)
        ));
        std::fs::write(&path, xml).ok()?;
        Some(path)
    }

    /// Polls the UI until a selector matches; saves the last dump on failure.
    /// Interruptions in front of the app (its dismiss selectors, Android's
    /// permission and ANR dialogs, another app's window) are handled on the
    /// way ([`interrupt::next`]) and recorded ([`Device::take_interruptions`]).
    pub async fn wait_element(
        &self,
        app: &AppProfile,
        what: &str,
        sels: &[Selector],
        timeout: Duration,
        diag: Option<&Path>,
    ) -> Result<UiNode, DeviceError> {
        self.wait_element_in(app, what, sels, timeout, diag, false)
            .await
    }

    /// [`Device::wait_element`] that also scrolls (`scroll`): while the
    /// element is not in the dump and no interruption is in front, the
    /// app's scrollable container ([`uidump::scroll_container`]) is swiped
    /// forward and dumped again. A RecyclerView's dump holds only the rows
    /// laid out on screen, so a chat further down a long list is found
    /// only this way. Scrolling ends when the element appears, when the
    /// container's content did not change after a swipe (its end), or at
    /// the deadline; after the end the wait goes on polling (the list may
    /// still be loading) until the deadline.
    async fn wait_element_in(
        &self,
        app: &AppProfile,
        what: &str,
        sels: &[Selector],
        timeout: Duration,
        diag: Option<&Path>,
        scroll: bool,
    ) -> Result<UiNode, DeviceError> {
        let start = Instant::now();
        let mut last = String::new();
        let mut dumps = 0;
        let mut budget = interrupt::Budget::default();
        // The container's content before the last swipe (`None`: no swipe
        // pending a comparison), and whether its end was reached.
        let mut before_swipe: Option<Vec<_>> = None;
        let mut at_end = !scroll;
        loop {
            let (xml, nodes) = self.dump().await?;
            dumps += 1;
            if let Some(n) = uidump::find(&nodes, sels) {
                return Ok(n.clone());
            }
            last = if xml.is_empty() { last } else { xml };
            if start.elapsed() >= timeout && dumps >= MIN_DUMPS {
                let dump = self.save_dump(diag, &app.id, what, &last);
                return Err(DeviceError::SelectorNotFound(Box::new(SelectorMiss {
                    device: self.name.clone(),
                    app: app.id.clone(),
                    element: what.to_string(),
                    selectors: sels
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" | "),
                    after: timeout,
                    dump,
                })));
            }
            if let Some(action) = interrupt::next(&nodes, app, &mut budget) {
                self.handle_interruption(&action, what).await?;
                continue;
            }
            if !at_end && let Some(list) = uidump::scroll_container(&nodes, &app.package) {
                let content = uidump::region_content(&nodes, list.bounds);
                if before_swipe.as_ref() == Some(&content) {
                    at_end = true;
                } else {
                    self.swipe_forward(list).await?;
                    before_swipe = Some(content);
                    continue;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Scrolls a container forward by half its height: a vertical swipe
    /// inside its bounds from 3/4 to 1/4 of its height with
    /// `input swipe <x1> <y1> <x2> <y2> [duration(ms)]` (AOSP
    /// cmds/input Input.java, InputShellCommand from Android 11 on). Half
    /// a height, slowly (1 s), so that the fling after the finger lifts
    /// does not carry rows past the screen unseen.
    async fn swipe_forward(&self, list: &UiNode) -> Result<(), DeviceError> {
        let [l, t, r, b] = list.bounds;
        let x = (l + r) / 2;
        let h = b - t;
        self.sh_ok(&format!(
            "input swipe {x} {} {x} {} 1000",
            t + h * 3 / 4,
            t + h / 4
        ))
        .await
        .map(|_| ())
    }

    /// Carries out an interruption's action and records it.
    pub async fn handle_interruption(
        &self,
        action: &interrupt::Action,
        waiting_for: &str,
    ) -> Result<(), DeviceError> {
        match action {
            interrupt::Action::Tap { node, .. } => self.tap(node).await?,
            interrupt::Action::Back { .. } => {
                self.sh_ok("input keyevent KEYCODE_BACK").await?;
            }
        }
        let note = format!("{action} while waiting for {waiting_for}");
        self.handled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(note);
        Ok(())
    }

    /// The interruptions handled since the last call, oldest first.
    pub fn take_interruptions(&self) -> Vec<String> {
        std::mem::take(&mut *self.handled.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Taps the centre of a node.
    pub async fn tap(&self, n: &UiNode) -> Result<(), DeviceError> {
        let (x, y) = n.center();
        self.sh_ok(&format!("input tap {x} {y}")).await.map(|_| ())
    }

    /// Launches an app (it must be installed).
    pub async fn launch(&self, app: &AppProfile) -> Result<(), DeviceError> {
        self.require_app(app).await?;
        let out = self
            .sh(&format!(
                "monkey -p {} -c android.intent.category.LAUNCHER 1",
                quote(&app.package)
            ))
            .await?;
        if out.rc != 0 || out.stdout.contains("No activities found") {
            if let Some(act) = &app.activity {
                self.sh_ok(&format!("am start -n {}", quote(act))).await?;
            } else {
                return Err(DeviceError::Command {
                    device: self.name.clone(),
                    command: "monkey".into(),
                    rc: out.rc,
                    output: out.stderr,
                });
            }
        }
        Ok(())
    }

    /// Opens the conversation with a peer (deep link or UI navigation) and
    /// waits for the input field.
    pub async fn open_chat(
        &self,
        app: &AppProfile,
        peer_account: &str,
        peer_name: &str,
        diag: Option<&Path>,
    ) -> Result<(), DeviceError> {
        self.require_app(app).await?;
        let ui = &app.ui;
        let digits: String = peer_account.chars().filter(char::is_ascii_digit).collect();
        let vars = [
            ("account", peer_account),
            ("digits", digits.as_str()),
            ("contact", peer_name),
        ];
        let start = Duration::from_secs_f64(ui.start_timeout_s.max(1.0));
        let step = Duration::from_secs_f64(ui.ui_timeout_s.max(1.0));
        if let Some(uri) = &ui.open_chat.uri {
            let mut u = uri.clone();
            for (k, v) in vars {
                u = u.replace(&format!("{{{k}}}"), v);
            }
            let out = self
                .sh(&format!(
                    "am start -a android.intent.action.VIEW -d {} {}",
                    quote(&u),
                    quote(&app.package)
                ))
                .await?;
            if out.rc != 0 || out.stderr.contains("Error") || out.stdout.contains("Error") {
                return Err(DeviceError::Command {
                    device: self.name.clone(),
                    command: format!("am start {u}"),
                    rc: out.rc,
                    output: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
                });
            }
        } else {
            // A cold start lands on the chat list whatever was open before.
            self.force_stop(app).await?;
            self.launch(app).await?;
            for (i, alts) in ui.open_chat.navigate.iter().enumerate() {
                let sels: Vec<Selector> = alts.iter().map(|s| s.fill(&vars)).collect();
                let timeout = if i == 0 { start } else { step };
                // Scrolling down is enough: the cold start above put the
                // list at its top, so nothing sought lies above, and no
                // later step relies on the list's position (no scroll back).
                let n = self
                    .wait_element_in(
                        app,
                        &format!("navigate-{}", i + 1),
                        &sels,
                        timeout,
                        diag,
                        true,
                    )
                    .await?;
                self.tap(&n).await?;
            }
        }
        self.wait_element(app, "text_field", &ui.text_field, start, diag)
            .await?;
        Ok(())
    }

    /// Types a text into the app's input field. The text never reaches the
    /// phone's shell unquoted (see [`typing`]); non-ASCII goes through the
    /// ADBKeyboard IME, which is selected for the duration and restored.
    pub async fn type_text(
        &self,
        app: &AppProfile,
        text: &str,
        diag: Option<&Path>,
    ) -> Result<(), DeviceError> {
        self.type_nodes(app, text, diag).await.map(|_| ())
    }

    /// Types `text` (see [`Device::type_text`]) and taps send, finding the
    /// button in the dump that showed the typed text (one dump less);
    /// returns host times around the tap.
    pub async fn type_and_send(
        &self,
        app: &AppProfile,
        text: &str,
        diag: Option<&Path>,
    ) -> Result<Sent, DeviceError> {
        let nodes = self.type_nodes(app, text, diag).await?;
        self.send_typed(app, &nodes, diag).await
    }

    /// Types `text` and checks the field shows it; returns that dump's
    /// nodes for [`Device::send_typed`] (split so that something else can
    /// happen between typing and the tap).
    pub async fn type_ready(
        &self,
        app: &AppProfile,
        text: &str,
        diag: Option<&Path>,
    ) -> Result<Vec<UiNode>, DeviceError> {
        self.type_nodes(app, text, diag).await
    }

    /// Taps send, found in `nodes` (the dump after typing) or waited for.
    pub async fn send_typed(
        &self,
        app: &AppProfile,
        nodes: &[UiNode],
        diag: Option<&Path>,
    ) -> Result<Sent, DeviceError> {
        match uidump::find(nodes, &app.ui.send_button) {
            Some(n) => self.tap_timed(app, n).await,
            None => self.tap_send(app, diag).await,
        }
    }

    async fn tap_timed(&self, app: &AppProfile, n: &UiNode) -> Result<Sent, DeviceError> {
        let host_before_s = now();
        self.tap(n).await?;
        Ok(Sent {
            app: app.id.clone(),
            host_before_s,
            host_after_s: now(),
        })
    }

    async fn type_nodes(
        &self,
        app: &AppProfile,
        text: &str,
        diag: Option<&Path>,
    ) -> Result<Vec<UiNode>, DeviceError> {
        let step = Duration::from_secs_f64(app.ui.ui_timeout_s.max(1.0));
        let field = self
            .wait_element(app, "text_field", &app.ui.text_field, step, diag)
            .await?;
        self.tap(&field).await?;
        // A draft left by a failed attempt would get the text appended:
        // delete whatever the field shows (extra deletes do nothing).
        let old = field.text.chars().count();
        if old > 0 {
            let dels = vec!["67"; old.min(500)].join(" ");
            self.sh_ok(&format!("input keyevent 123 {dels}")).await?;
        }
        match typing::plan(text) {
            Typing::InputText(cmd) => {
                self.sh_ok(&cmd).await?;
            }
            Typing::AdbKeyboard(cmd) => {
                let prev = self
                    .sh("settings get secure default_input_method")
                    .await?
                    .stdout
                    .trim()
                    .to_string();
                self.sh(&format!("ime enable {ADB_KEYBOARD}")).await?;
                let set = self.sh(&format!("ime set {ADB_KEYBOARD}")).await?;
                if set.rc != 0 {
                    return Err(DeviceError::Command {
                        device: self.name.clone(),
                        command: format!("ime set {ADB_KEYBOARD}"),
                        rc: set.rc,
                        output: format!(
                            "{}: the ADBKeyboard IME is needed to type text that is not printable ASCII ({text:?}); install it (docs/real-lab.md) or use ASCII texts",
                            set.stderr.trim()
                        ),
                    });
                }
                let r = self.sh_ok(&cmd).await;
                if !prev.is_empty() && prev != "null" && prev != ADB_KEYBOARD {
                    self.sh(&format!("ime set {}", quote(&prev))).await?;
                }
                r?;
            }
        }
        self.typed_check(app, text, step, diag).await
    }

    /// Waits until the input field shows exactly `text` (typing can be
    /// lost); returns the nodes of that dump.
    async fn typed_check(
        &self,
        app: &AppProfile,
        text: &str,
        step: Duration,
        diag: Option<&Path>,
    ) -> Result<Vec<UiNode>, DeviceError> {
        let deadline = Instant::now() + step;
        let mut dumps = 0;
        loop {
            let (xml, nodes) = self.dump().await?;
            dumps += 1;
            if uidump::find(&nodes, &app.ui.text_field).is_some_and(|n| n.text == text) {
                return Ok(nodes);
            }
            if Instant::now() > deadline && dumps >= MIN_DUMPS {
                let dump = self.save_dump(diag, &app.id, "typed_text", &xml);
                return Err(DeviceError::SelectorNotFound(Box::new(SelectorMiss {
                    device: self.name.clone(),
                    app: app.id.clone(),
                    element: "text field showing the typed text".into(),
                    selectors: app
                        .ui
                        .text_field
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" | "),
                    after: step,
                    dump,
                })));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Taps the send button; returns host times around the tap.
    pub async fn tap_send(
        &self,
        app: &AppProfile,
        diag: Option<&Path>,
    ) -> Result<Sent, DeviceError> {
        let step = Duration::from_secs_f64(app.ui.ui_timeout_s.max(1.0));
        let n = self
            .wait_element(app, "send_button", &app.ui.send_button, step, diag)
            .await?;
        self.tap_timed(app, &n).await
    }

    /// Opens the chat, types and sends one message.
    pub async fn send_message(
        &self,
        app: &AppProfile,
        peer_account: &str,
        peer_name: &str,
        text: &str,
        diag: Option<&Path>,
    ) -> Result<Sent, DeviceError> {
        self.open_chat(app, peer_account, peer_name, diag).await?;
        self.type_text(app, text, diag).await?;
        self.tap_send(app, diag).await
    }

    /// Posted notifications.
    pub async fn notifications(&self) -> Result<Vec<notif::PostedNotification>, DeviceError> {
        Ok(notif::parse(
            &self.sh("dumpsys notification --noredact").await?.stdout,
        ))
    }

    /// What the phone shows of `text` in `app` now (notifications, and with
    /// `ui` the open chat's bubbles): take it before the text is sent, so a
    /// receipt counts only for something new.
    pub async fn receipt_baseline(
        &self,
        app: &AppProfile,
        text: &str,
        ui: bool,
    ) -> Result<ReceiptBaseline, DeviceError> {
        let taken_s = Some(now());
        let notifications = self
            .notifications()
            .await?
            .iter()
            .filter(|n| n.package == app.package && n.shows(text))
            .map(|n| (n.key.clone(), n.posted_ms()))
            .collect();
        let mut bubbles = None;
        if ui {
            let (_, nodes) = self.dump().await?;
            if uidump::find(&nodes, &app.ui.text_field).is_some() {
                bubbles = Some(count_bubbles(app, text, &nodes));
            }
        }
        Ok(ReceiptBaseline {
            notifications,
            bubbles,
            taken_s,
        })
    }

    /// Waits until `text` arrives in `app`: a notification showing it, or
    /// (fallback, every third round) a bubble in the open conversation;
    /// nothing in an empty baseline counts as new.
    pub async fn wait_receipt(
        &self,
        app: &AppProfile,
        text: &str,
        timeout: Duration,
        diag: Option<&Path>,
    ) -> Result<Receipt, DeviceError> {
        self.wait_receipt_since(app, text, timeout, diag, &ReceiptBaseline::default(), true)
            .await
    }

    /// [`Device::wait_receipt`] counting only what `base` did not show: a
    /// notification whose (key, posting time) is new, or more bubbles with
    /// the text than before. `ui`: also poll the open chat.
    pub async fn wait_receipt_since(
        &self,
        app: &AppProfile,
        text: &str,
        timeout: Duration,
        diag: Option<&Path>,
        base: &ReceiptBaseline,
        ui: bool,
    ) -> Result<Receipt, DeviceError> {
        let start = Instant::now();
        let mut round = 0u32;
        let mut last_xml = String::new();
        // The message may arrive before this wait begins (the sender's tap
        // returns after the backend took it): the last observation before
        // the send is the bound, not the wait's start.
        let mut since = base.taken_s.unwrap_or_else(now);
        loop {
            for n in self.notifications().await? {
                let known = base.notifications.contains(&(n.key.clone(), n.posted_ms()));
                if n.package == app.package && !known && n.shows(text) {
                    return Ok(Receipt {
                        app: app.id.clone(),
                        via: ReceiptVia::Notification,
                        host_seen_s: now(),
                        host_since_s: since,
                        phone_posted_s: n.posted_ms().or(n.when_ms).map(|ms| ms as f64 / 1000.0),
                        key: n.key.clone(),
                    });
                }
            }
            if ui && round % 3 == 2 {
                let ui_start = now();
                let (xml, nodes) = self.dump().await?;
                // Only a dump of the conversation says anything about the
                // bubble: one of another screen (a dialog in front, the
                // launcher) must not narrow the arrival's interval.
                if !xml.is_empty() && uidump::find(&nodes, &app.ui.text_field).is_some() {
                    if count_bubbles(app, text, &nodes) > base.bubbles.unwrap_or(0) {
                        return Ok(Receipt {
                            app: app.id.clone(),
                            via: ReceiptVia::Ui,
                            host_seen_s: now(),
                            host_since_s: since,
                            phone_posted_s: None,
                            key: None,
                        });
                    }
                    // The dump showed the screen at some moment after it
                    // started: the message was not there yet then.
                    since = ui_start;
                    last_xml = xml;
                }
            }
            round += 1;
            if start.elapsed() >= timeout {
                self.save_dump(diag, &app.id, "receipt", &last_xml);
                return Err(DeviceError::ReceiptTimeout {
                    device: self.name.clone(),
                    app: app.id.clone(),
                    after: timeout,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends the key that leaves the app for the home screen (the app keeps
    /// running and, like on a phone, posts notifications again).
    pub async fn home(&self) -> Result<(), DeviceError> {
        self.sh_ok("input keyevent KEYCODE_HOME").await.map(|_| ())
    }

    /// Whether the user denied `app` its notifications: the
    /// `POST_NOTIFICATION` app op (which Android 13+ keeps in step with the
    /// `POST_NOTIFICATIONS` permission) set to `ignore` or `deny`, as AOSP's
    /// `appops get <package> <op>` prints it (`POST_NOTIFICATION: ignore`;
    /// "No operations." when never set). The raw answer comes back too.
    pub async fn notifications_denied(&self, app: &AppProfile) -> Result<bool, DeviceError> {
        let out = self
            .sh(&format!(
                "appops get {} POST_NOTIFICATION",
                quote(&app.package)
            ))
            .await?;
        Ok(notifications_denied_by(&out.stdout))
    }

    /// Stops an app.
    pub async fn force_stop(&self, app: &AppProfile) -> Result<(), DeviceError> {
        self.sh_ok(&format!("am force-stop {}", quote(&app.package)))
            .await
            .map(|_| ())
    }

    /// Records the screen for `secs` seconds (on its own ADB connection, so
    /// other actions go on meanwhile) and pulls the video to `local`.
    pub async fn screenrecord(&self, secs: u32, local: &Path) -> Result<(), DeviceError> {
        let secs = secs.clamp(1, 180);
        let rec = Adb::open(self.adb.target.clone()).await?;
        let remote = format!(
            "/sdcard/matador-{}-{}.mp4",
            sanitize(&self.name),
            (now() * 1000.0) as u64
        );
        let out = rec
            .shell(
                &format!("screenrecord --time-limit {secs} {}", quote(&remote)),
                Duration::from_secs(u64::from(secs) + 20),
            )
            .await?;
        if out.rc != 0 {
            return Err(DeviceError::Command {
                device: self.name.clone(),
                command: "screenrecord".into(),
                rc: out.rc,
                output: format!("{}{}", out.stdout, out.stderr),
            });
        }
        let data = rec.pull(&remote, Duration::from_secs(60)).await?;
        if let Some(dir) = local.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(local, data)?;
        rec.shell(&format!("rm -f {}", quote(&remote)), CMD_TIMEOUT)
            .await?;
        Ok(())
    }

    /// The Linux uid of an installed package.
    pub async fn app_uid(&self, package: &str) -> Result<u32, DeviceError> {
        let out = self
            .sh(&format!("dumpsys package {}", quote(package)))
            .await?
            .stdout;
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("userId=")
                    .and_then(|v| v.trim().parse().ok())
            })
            .ok_or_else(|| DeviceError::AppNotInstalled {
                device: self.name.clone(),
                package: package.to_string(),
            })
    }

    async fn su(&self, script: &str) -> Result<String, DeviceError> {
        if !self.has_root().await? {
            return Err(DeviceError::NotRooted {
                device: self.name.clone(),
            });
        }
        self.sh_ok(&format!("su -c {}", quote(script))).await
    }

    /// Per-UID allow-list (rooted phones): only these uids (and DNS) may send;
    /// everything else is rejected, cutting background noise during a run.
    pub async fn firewall_allow_only(&self, uids: &[u32]) -> Result<(), DeviceError> {
        let mut s = String::from(
            "iptables -w -N matador 2>/dev/null; iptables -w -F matador && iptables -w -A matador -o lo -j ACCEPT && iptables -w -A matador -p udp --dport 53 -j ACCEPT",
        );
        for u in uids {
            s.push_str(&format!(
                " && iptables -w -A matador -m owner --uid-owner {u} -j ACCEPT"
            ));
        }
        s.push_str(" && iptables -w -A matador -j REJECT; iptables -w -D OUTPUT -j matador 2>/dev/null; iptables -w -I OUTPUT -j matador");
        self.su(&s).await.map(|_| ())
    }

    /// Removes the allow-list.
    pub async fn firewall_clear(&self) -> Result<(), DeviceError> {
        self.su("iptables -w -D OUTPUT -j matador 2>/dev/null; iptables -w -F matador 2>/dev/null; iptables -w -X matador 2>/dev/null; true").await.map(|_| ())
    }

    /// `ro.build.version.sdk`.
    pub async fn sdk(&self) -> Result<u32, DeviceError> {
        let out = self.sh_ok("getprop ro.build.version.sdk").await?;
        out.trim().parse().map_err(|_| DeviceError::Command {
            device: self.name.clone(),
            command: "getprop ro.build.version.sdk".into(),
            rc: 0,
            output: format!("not an SDK level: {:?}", out.trim()),
        })
    }

    /// Makes apps see a location (test provider `gps`; by release, see
    /// [`location::MockMethod`]), replacing XPrivacy.
    pub async fn mock_location(&self, lat: f64, lon: f64) -> Result<(), DeviceError> {
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return Err(DeviceError::Command {
                device: self.name.clone(),
                command: "mock location".into(),
                rc: 2,
                output: format!("{lat},{lon} is not a coordinate"),
            });
        }
        let sdk = self.sdk().await?;
        let method = MockMethod::for_sdk(sdk).ok_or_else(|| DeviceError::Command {
            device: self.name.clone(),
            command: "mock location".into(),
            rc: 2,
            output: format!("SDK {sdk}: a mock location needs Android 9 (SDK 28) or newer"),
        })?;
        if method == MockMethod::AppiumSettings
            && self.sh(&format!("pm path {APPIUM_SETTINGS}")).await?.rc != 0
        {
            return Err(DeviceError::Command {
                device: self.name.clone(),
                command: "mock location".into(),
                rc: 1,
                output: format!(
                    "SDK {sdk} has no `cmd location`: install Appium Settings ({APPIUM_SETTINGS}) for a mock location on Android 9–11"
                ),
            });
        }
        for c in method.commands(lat, lon) {
            self.sh_ok(&c).await?;
        }
        // The app's service sets the provider asynchronously: poll.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let d = self.sh_ok("dumpsys location").await?;
            if location::active(&d, lat, lon) {
                break;
            }
            if Instant::now() > deadline {
                return Err(DeviceError::Command {
                    device: self.name.clone(),
                    command: "dumpsys location".into(),
                    rc: 1,
                    output: format!(
                        "mock location {} not active ({method:?})",
                        location::coordinates(lat, lon)
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Estimates the clock offset with `rounds` round trips (at least 3).
    pub async fn clock(&self, rounds: u32) -> Result<ClockEstimate, DeviceError> {
        let mut samples = Vec::new();
        for _ in 0..rounds.max(3) {
            // Timed on the worker thread: from just before the request to
            // the arrival of the first output byte, so neither the hop to the
            // worker nor the session teardown widens the round trip.
            let (out, t0, t1) = self
                .adb
                .call(CMD_TIMEOUT, "date +%s.%N", |d| {
                    let mut w = FirstByte::default();
                    let t0 = now();
                    d.shell_command(&"date +%s.%N", Some(&mut w), None)?;
                    Ok((w.buf, t0, w.first.unwrap_or_else(now)))
                })
                .await?;
            if let Some(p) = clock::parse_phone_time(&String::from_utf8_lossy(&out)) {
                samples.push((t0, p, t1));
            }
        }
        clock::best(&samples).ok_or_else(|| DeviceError::Command {
            device: self.name.clone(),
            command: "date +%s.%N".into(),
            rc: 1,
            output: "no parseable time".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::notifications_denied_by;

    #[test]
    fn post_notification_op_as_appops_prints_it() {
        // AOSP AppOpsService.Shell `get`: "<OP>: <mode>[; time=…]" lines.
        assert!(notifications_denied_by("POST_NOTIFICATION: ignore\n"));
        assert!(notifications_denied_by(
            "POST_NOTIFICATION: deny; rejectTime=+1h2m3s4ms ago\n"
        ));
        assert!(!notifications_denied_by("POST_NOTIFICATION: allow\n"));
        assert!(!notifications_denied_by("No operations.\n"));
        assert!(!notifications_denied_by(
            "CAMERA: ignore\nPOST_NOTIFICATION: allow\n"
        ));
    }
}
