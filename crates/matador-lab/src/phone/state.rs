//! The simulated phone's mutable state: clock, filesystem, screen, apps,
//! notifications and system settings. One `Phone` sits behind a mutex shared
//! by the ADB services, the shell and the app network tasks.

use super::apps::{AppDef, Variant, app_def};
use super::config::PhoneSimConfig;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The phone's clock: host time plus a skew plus a linear drift.
#[derive(Debug, Clone)]
pub struct SimClock {
    start: Instant,
    start_unix_ns: i128,
    skew_ns: i128,
    drift_ppm: f64,
}

impl SimClock {
    /// A clock `skew_ms` ahead of the host, drifting by `drift_ppm`.
    pub fn new(skew_ms: f64, drift_ppm: f64) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        SimClock {
            start: Instant::now(),
            start_unix_ns: now.as_nanos() as i128,
            skew_ns: (skew_ms * 1e6) as i128,
            drift_ppm,
        }
    }

    /// The phone's current time in unix nanoseconds.
    pub fn now_ns(&self) -> i128 {
        let el = self.start.elapsed().as_nanos() as i128;
        let drift = (el as f64 * self.drift_ppm / 1e6) as i128;
        self.start_unix_ns + el + self.skew_ns + drift
    }

    /// The phone's current time in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.now_ns() / 1_000_000) as i64
    }
}

/// A file or directory in the simulated filesystem.
#[derive(Debug, Clone)]
pub struct FsEntry {
    /// Contents (empty for directories).
    pub data: Vec<u8>,
    /// Unix mode including the type bits.
    pub mode: u32,
    /// Modification time (phone clock, unix seconds).
    pub mtime: u32,
}

impl FsEntry {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == 0o040000
    }
}

/// Filesystem errors, worded like toybox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// Missing file or parent directory.
    #[error("No such file or directory")]
    NotFound,
    /// Not writable by this user.
    #[error("Permission denied")]
    Denied,
    /// A read-only mount.
    #[error("Read-only file system")]
    ReadOnly,
    /// A directory where a file was expected.
    #[error("Is a directory")]
    IsDir,
}

/// The simulated filesystem (paths are normalised absolute strings).
#[derive(Debug, Clone, Default)]
pub struct Fs {
    /// Entries by path.
    pub entries: BTreeMap<String, FsEntry>,
}

/// Normalises a path (`.`/`..`, duplicate slashes, `/sdcard` alias).
pub fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = format!("/{}", parts.join("/"));
    for alias in ["/storage/emulated/0", "/storage/self/primary"] {
        if let Some(rest) = joined.strip_prefix(alias)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("/sdcard{rest}");
        }
    }
    joined
}

fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_string(),
    }
}

impl Fs {
    fn with_dirs(dirs: &[&str], now: u32) -> Self {
        let mut fs = Fs::default();
        for d in dirs {
            fs.entries.insert(
                (*d).to_string(),
                FsEntry {
                    data: Vec::new(),
                    mode: 0o040000 | 0o775,
                    mtime: now,
                },
            );
        }
        fs
    }

    /// Looks a path up.
    pub fn get(&self, path: &str) -> Option<&FsEntry> {
        self.entries.get(&normalize(path))
    }

    fn writable(path: &str, root: bool) -> Result<(), FsError> {
        if path == "/system" || path.starts_with("/system/") || path.starts_with("/vendor") {
            return Err(FsError::ReadOnly);
        }
        let user_ok = path.starts_with("/sdcard/") || path.starts_with("/data/local/tmp/");
        if user_ok || (root && (path.starts_with("/data/") || path.starts_with("/dev/"))) {
            Ok(())
        } else {
            Err(FsError::Denied)
        }
    }

    /// Writes (creates or replaces) a file.
    pub fn write(
        &mut self,
        path: &str,
        data: Vec<u8>,
        mode: u32,
        now: u32,
        root: bool,
    ) -> Result<(), FsError> {
        let path = normalize(path);
        if path == "/dev/null" {
            return Ok(());
        }
        match self.entries.get(&parent(&path)) {
            Some(p) if p.is_dir() => {}
            _ => return Err(FsError::NotFound),
        }
        if self.entries.get(&path).is_some_and(FsEntry::is_dir) {
            return Err(FsError::IsDir);
        }
        Self::writable(&path, root)?;
        self.entries.insert(
            path,
            FsEntry {
                data,
                mode: 0o100000 | (mode & 0o7777),
                mtime: now,
            },
        );
        Ok(())
    }

    /// Appends to a file, creating it.
    pub fn append(&mut self, path: &str, data: &[u8], now: u32, root: bool) -> Result<(), FsError> {
        let p = normalize(path);
        let mut old = match self.entries.get(&p) {
            Some(e) if e.is_dir() => return Err(FsError::IsDir),
            Some(e) => e.data.clone(),
            None => Vec::new(),
        };
        old.extend_from_slice(data);
        self.write(&p, old, 0o644, now, root)
    }

    /// Creates a directory.
    pub fn mkdir(&mut self, path: &str, now: u32, root: bool) -> Result<(), FsError> {
        let path = normalize(path);
        if self.entries.contains_key(&path) {
            return Ok(());
        }
        match self.entries.get(&parent(&path)) {
            Some(p) if p.is_dir() => {}
            _ => return Err(FsError::NotFound),
        }
        Self::writable(&format!("{path}/"), root)?;
        self.entries.insert(
            path,
            FsEntry {
                data: Vec::new(),
                mode: 0o040000 | 0o775,
                mtime: now,
            },
        );
        Ok(())
    }

    /// Removes a file or an empty directory.
    pub fn remove(&mut self, path: &str, root: bool) -> Result<(), FsError> {
        let path = normalize(path);
        if !self.entries.contains_key(&path) {
            return Err(FsError::NotFound);
        }
        Self::writable(&path, root)?;
        self.entries.remove(&path);
        Ok(())
    }

    /// Direct children of a directory: (name, entry).
    pub fn list(&self, dir: &str) -> Option<Vec<(String, &FsEntry)>> {
        let dir = normalize(dir);
        if !self.entries.get(&dir)?.is_dir() {
            return None;
        }
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        Some(
            self.entries
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .filter(|(k, _)| !k[prefix.len()..].contains('/') && k.len() > prefix.len())
                .map(|(k, e)| (k[prefix.len()..].to_string(), e))
                .collect(),
        )
    }
}

/// A message in a chat's history.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// Sent by this phone.
    pub outgoing: bool,
    /// Text.
    pub text: String,
    /// Delivery state for outgoing messages (`pending`, `sent`, `failed`).
    pub status: &'static str,
    /// Message id (per sender).
    pub id: u64,
    /// Host time (unix s) the message entered the chat: typed and sent, or
    /// arrived. The ground truth a receipt's uncertainty interval is
    /// checked against (the backend's delivery log precedes it by the
    /// transit to the phone, which a loaded machine stretches).
    pub host_s: f64,
}

/// Host time, unix seconds.
fn host_now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Which screen of an app is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppScreen {
    /// Cold-start splash until the instant given.
    Splash(Instant),
    /// Chat list.
    List,
    /// Conversation with the contact with this account.
    Chat(String),
}

/// One installed app's state.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Static description.
    pub def: &'static AppDef,
    /// Installed version (0 or 1).
    pub variant: usize,
    /// Own account.
    pub account: String,
    /// Address book: (name, account).
    pub contacts: Vec<(String, String)>,
    /// Backend `host:port`.
    pub server: String,
    /// Process running.
    pub running: bool,
    /// Current screen when in the foreground.
    pub screen: AppScreen,
    /// Text in the message input field.
    pub draft: String,
    /// Input field focused (IME shown).
    pub focused: bool,
    /// Chat histories by contact account.
    pub chats: BTreeMap<String, Vec<ChatMessage>>,
    /// Connected to its backend.
    pub online: bool,
    /// App uid (10000+).
    pub uid: u32,
    /// Conversation to show once the splash screen ends (deep link).
    pub after_splash: Option<String>,
    /// How far (px) the chat list is scrolled down. A cold start (and
    /// `am force-stop`) resets it, as a new activity's list starts at the
    /// top; leaving a chat with "up" keeps it, as the list activity stays
    /// on the back stack with its position.
    pub list_scroll: i32,
}

impl AppState {
    /// The installed version's ids.
    pub fn var(&self) -> &'static Variant {
        &self.def.variants[self.variant]
    }

    /// Display name of an account (contact name, or the account itself).
    pub fn name_of(&self, account: &str) -> String {
        self.contacts
            .iter()
            .find(|(_, a)| a == account)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| account.to_string())
    }
}

/// A posted notification.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Package that posted it.
    pub package: String,
    /// Notification id.
    pub id: i32,
    /// Posting uid.
    pub uid: u32,
    /// Title (sender).
    pub title: String,
    /// Text (message).
    pub text: String,
    /// `when`: the latest message's time in whole seconds (unix ms), as
    /// messengers set it (often from the sender's or server's clock).
    pub when_ms: i64,
    /// Phone time the notification was first posted (`mCreationTimeMs`).
    pub created_ms: i64,
    /// Phone time it was last posted or updated (`mUpdateTimeMs`).
    pub updated_ms: i64,
    /// MessagingStyle messages: text and time (unix ms).
    pub messages: Vec<(String, i64)>,
    /// Not in dumps before this moment (the app is still processing).
    pub shown: Instant,
    /// Channel id.
    pub channel: &'static str,
}

/// A request from the UI to an app's network task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetRequest {
    /// Send a chat message.
    Send {
        /// App id.
        app: &'static str,
        /// Recipient account.
        to: String,
        /// Message id.
        id: u64,
        /// Text.
        text: String,
    },
}

/// What is in the foreground.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreground {
    /// The home screen.
    Launcher,
    /// An app, by index into `Phone::apps`.
    App(usize),
}

/// A phone that stops answering one command for a while, as a phone whose
/// input service is stuck (system_server busy, ANR): the command is held
/// before it starts and then runs late — unless the host closed its adb
/// stream meanwhile, in which case it never starts. (Modelled as not yet
/// started: a command already running on a real phone may still complete,
/// which is why a cancel also force-stops the app.) The outcome says which
/// happened.
#[derive(Debug)]
pub struct InputStall {
    /// The first command containing this text is held.
    pub command: String,
    /// How long the command is held.
    pub hold: std::time::Duration,
    /// `true`: the held command ran after the hold; `false`: its stream was
    /// closed first and it never ran.
    pub outcome: tokio::sync::oneshot::Sender<bool>,
    /// Told when the command arrives and the hold begins (a test pulls a
    /// cable at that moment: mid-action, not before it).
    pub begun: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The whole simulated phone.
#[derive(Debug)]
pub struct Phone {
    /// Configuration it was started with.
    pub cfg: PhoneSimConfig,
    /// Its clock.
    pub clock: SimClock,
    /// Its filesystem.
    pub fs: Fs,
    /// System properties.
    pub props: BTreeMap<String, String>,
    /// Screen on.
    pub awake: bool,
    /// Keyguard shown.
    pub locked: bool,
    /// Foreground activity.
    pub fg: Foreground,
    /// Installed apps.
    pub apps: Vec<AppState>,
    /// Posted notifications.
    pub notifications: Vec<Notification>,
    next_notification: i32,
    next_message: u64,
    /// iptables rules per table/chain, in `iptables -S` form.
    pub firewall: super::firewall::Firewall,
    /// App ops: (package, op) → mode.
    pub appops: BTreeMap<(String, String), String>,
    /// Settings: "namespace key" → value.
    pub settings: BTreeMap<String, String>,
    /// Test location providers and their last location (lat, lon).
    pub test_providers: BTreeMap<String, Option<(f64, f64)>>,
    /// Active input method.
    pub ime: String,
    /// Clipboard text.
    pub clipboard: String,
    /// Requests to app network tasks.
    pub net_tx: Option<tokio::sync::mpsc::UnboundedSender<NetRequest>>,
    /// Files written by `screenrecord` that are still "recording" (path → end).
    pub recordings: Vec<(String, Instant)>,
    /// When the screen content last changed (`uiautomator dump` waits for
    /// it to be idle).
    pub ui_changed: Instant,
    /// A stall armed for the next matching shell command (fault knob).
    pub stall_input: Option<InputStall>,
    /// Random generator state (dump latency, failures).
    pub rng: u64,
    /// The interruption in front of an app, if any ([`super::dialog`]).
    pub dialog: Option<super::dialog::Dialog>,
}

impl Phone {
    /// A phone in its initial state.
    pub fn new(cfg: PhoneSimConfig) -> Self {
        let clock = SimClock::new(cfg.clock_skew_ms, cfg.clock_drift_ppm);
        let now = (clock.now_ms() / 1000) as u32;
        let fs = Fs::with_dirs(
            &[
                "/",
                "/sdcard",
                "/sdcard/Download",
                "/sdcard/DCIM",
                "/sdcard/Movies",
                "/data",
                "/data/local",
                "/data/local/tmp",
                "/system",
                "/system/bin",
                "/dev",
                "/proc",
                "/vendor",
            ],
            now,
        );
        let mut props = BTreeMap::new();
        let serial = cfg.serial();
        let fingerprint = format!(
            "{}/{}/{}:{}/TQ3A.230901.001/10750268:user/release-keys",
            cfg.manufacturer.to_lowercase(),
            cfg.device,
            cfg.device,
            cfg.android_release
        );
        for (k, v) in [
            ("ro.product.model", cfg.model.clone()),
            ("ro.product.manufacturer", cfg.manufacturer.clone()),
            ("ro.product.brand", cfg.manufacturer.to_lowercase()),
            ("ro.product.name", cfg.device.clone()),
            ("ro.product.device", cfg.device.clone()),
            ("ro.build.version.release", cfg.android_release.clone()),
            ("ro.build.version.sdk", cfg.sdk.to_string()),
            ("ro.build.fingerprint", fingerprint),
            ("ro.build.type", "user".into()),
            ("ro.debuggable", "0".into()),
            ("ro.secure", "1".into()),
            ("ro.serialno", serial),
            ("ro.sf.lcd_density", cfg.density.to_string()),
            ("persist.sys.timezone", "Etc/UTC".into()),
            ("persist.sys.locale", cfg.locale.clone()),
            ("gsm.operator.alpha", String::new()),
            ("sys.boot_completed", "1".into()),
            (
                "ro.adb.secure",
                if cfg.auth == super::config::AuthMode::None {
                    "0"
                } else {
                    "1"
                }
                .into(),
            ),
        ] {
            props.insert(k.to_string(), v);
        }
        let mut apps = Vec::new();
        for (i, (id, a)) in cfg.apps.iter().enumerate() {
            let Some(def) = app_def(id) else { continue };
            apps.push(AppState {
                def,
                variant: a.variant.min(1),
                account: a.account.clone(),
                contacts: a
                    .contacts
                    .iter()
                    .map(|c| (c.name.clone(), c.account.clone()))
                    .collect(),
                server: a
                    .server
                    .clone()
                    .unwrap_or_else(|| format!("{}:{}", def.host, def.port)),
                running: false,
                screen: AppScreen::List,
                draft: String::new(),
                focused: false,
                chats: BTreeMap::new(),
                online: false,
                uid: 10100 + i as u32 * 17,
                after_splash: None,
                list_scroll: 0,
            });
        }
        let mut settings = BTreeMap::new();
        for (k, v) in [
            ("global airplane_mode_on", "1"),
            ("global wifi_on", "1"),
            ("global adb_enabled", "1"),
            ("secure location_mode", "3"),
            (
                "secure default_input_method",
                "com.google.android.inputmethod.latin/com.android.inputmethod.latin.LatinIME",
            ),
            ("system screen_off_timeout", "600000"),
            ("global auto_time", "1"),
        ] {
            settings.insert(k.to_string(), v.to_string());
        }
        let locked = cfg.start_locked;
        Phone {
            clock,
            fs,
            props,
            awake: !locked,
            locked,
            fg: Foreground::Launcher,
            apps,
            notifications: Vec::new(),
            next_notification: 1,
            // From the clock: ids stay unique across restarts of the
            // simulator, so the backend can recognise a message sent again.
            next_message: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_micros() as u64),
            firewall: Default::default(),
            appops: BTreeMap::new(),
            settings,
            test_providers: BTreeMap::new(),
            ime: "com.google.android.inputmethod.latin/com.android.inputmethod.latin.LatinIME"
                .into(),
            clipboard: String::new(),
            net_tx: None,
            recordings: Vec::new(),
            ui_changed: Instant::now(),
            stall_input: None,
            rng: cfg
                .name
                .bytes()
                .fold(cfg.ui_dump.seed | 1, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                })
                .max(1),
            dialog: None,
            cfg,
        }
    }

    /// Phone time in unix seconds (for mtimes).
    pub fn now_secs(&self) -> u32 {
        (self.clock.now_ms() / 1000).max(0) as u32
    }

    /// Whether app `idx` may post notifications: the `POST_NOTIFICATION`
    /// app op, which Android 13+ keeps in step with the `POST_NOTIFICATIONS`
    /// permission (so `appops get/set` show and change it, as
    /// `devices prepare` does); `None`: never decided.
    pub fn notifications_allowed(&self, idx: usize) -> Option<bool> {
        let key = (
            self.apps[idx].def.package.to_string(),
            "POST_NOTIFICATION".to_string(),
        );
        self.appops
            .get(&key)
            .map(|m| !matches!(m.as_str(), "ignore" | "deny"))
    }

    /// Decides app `idx`'s notification permission (the prompt's answer).
    pub fn set_notifications_allowed(&mut self, idx: usize, allowed: bool) {
        let key = (
            self.apps[idx].def.package.to_string(),
            "POST_NOTIFICATION".to_string(),
        );
        self.appops
            .insert(key, if allowed { "allow" } else { "ignore" }.to_string());
    }

    /// Index of an installed app by package.
    pub fn app_index(&self, package: &str) -> Option<usize> {
        self.apps.iter().position(|a| a.def.package == package)
    }

    /// Brings an app to the foreground (cold start shows a splash first).
    pub fn launch(&mut self, idx: usize) {
        self.ui_changed = Instant::now();
        let cold = Duration::from_millis(self.cfg.cold_start_ms);
        let app = &mut self.apps[idx];
        let cold_start = !app.running;
        if cold_start {
            app.running = true;
            app.screen = AppScreen::Splash(Instant::now() + cold);
            app.list_scroll = 0;
            app.draft.clear();
            app.focused = false;
        }
        self.fg = Foreground::App(idx);
        if cold_start {
            super::dialog::on_cold_start(self, idx);
        }
    }

    /// Stops an app (`am force-stop`).
    pub fn force_stop(&mut self, idx: usize) {
        self.ui_changed = Instant::now();
        if self.dialog.is_some_and(|d| d.app() == idx) {
            self.dialog = None;
        }
        let app = &mut self.apps[idx];
        app.running = false;
        app.screen = AppScreen::List;
        app.list_scroll = 0;
        app.draft.clear();
        app.focused = false;
        if self.fg == Foreground::App(idx) {
            self.fg = Foreground::Launcher;
        }
    }

    /// Ends splash screens whose time has come.
    pub fn tick(&mut self) {
        let now = Instant::now();
        for app in &mut self.apps {
            if let AppScreen::Splash(until) = app.screen
                && now >= until
            {
                self.ui_changed = self.ui_changed.max(until);
                app.screen = match app.after_splash.take() {
                    Some(account) => AppScreen::Chat(account),
                    None => AppScreen::List,
                };
            }
        }
        self.recordings.retain(|(_, end)| *end > now);
    }

    /// Opens the conversation with `account` in app `idx` (launching it).
    pub fn open_chat(&mut self, idx: usize, account: &str) {
        self.launch(idx);
        let app = &mut self.apps[idx];
        if matches!(app.screen, AppScreen::Splash(_)) {
            app.after_splash = Some(account.to_string());
        } else {
            app.screen = AppScreen::Chat(account.to_string());
        }
        app.draft.clear();
        app.focused = false;
        // Reading a chat clears its notifications.
        let pkg = self.apps[idx].def.package;
        let name = self.apps[idx].name_of(account);
        self.notifications
            .retain(|n| !(n.package == pkg && n.title == name));
    }

    /// Sends the draft of the open chat of app `idx`.
    pub fn send_draft(&mut self, idx: usize) -> bool {
        let id = self.next_message;
        let app = &mut self.apps[idx];
        let AppScreen::Chat(to) = app.screen.clone() else {
            return false;
        };
        if app.draft.is_empty() {
            return false;
        }
        let text = std::mem::take(&mut app.draft);
        self.next_message += 1;
        app.chats.entry(to.clone()).or_default().push(ChatMessage {
            outgoing: true,
            text: text.clone(),
            status: "pending",
            id,
            host_s: host_now_s(),
        });
        let def_id = app.def.id;
        if let Some(tx) = &self.net_tx {
            let _ = tx.send(NetRequest::Send {
                app: def_id,
                to,
                id,
                text,
            });
        }
        true
    }

    /// Marks an outgoing message as sent or failed.
    pub fn mark(&mut self, app_id: &str, id: u64, status: &'static str) {
        for app in self.apps.iter_mut().filter(|a| a.def.id == app_id) {
            for msgs in app.chats.values_mut() {
                for m in msgs.iter_mut().filter(|m| m.outgoing && m.id == id) {
                    m.status = status;
                }
            }
        }
    }

    /// An incoming message arrived: add it to the chat and notify unless the
    /// conversation is open on an awake screen.
    pub fn deliver(&mut self, app_id: &str, from: &str, text: &str) {
        let Some(idx) = self.apps.iter().position(|a| a.def.id == app_id) else {
            return;
        };
        let now = self.clock.now_ms();
        let visible = self.awake
            && !self.locked
            && self.fg == Foreground::App(idx)
            && self.apps[idx].screen == AppScreen::Chat(from.to_string());
        // Denied by the user (any release), or, on Android 13+, not yet
        // allowed: no notification.
        let silenced = self.notifications_allowed(idx) == Some(false)
            || (self.cfg.interruptions.notification_prompt
                && self.cfg.sdk >= 33
                && self.notifications_allowed(idx) != Some(true));
        let app = &mut self.apps[idx];
        app.chats
            .entry(from.to_string())
            .or_default()
            .push(ChatMessage {
                outgoing: false,
                text: text.to_string(),
                status: "received",
                id: 0,
                host_s: host_now_s(),
            });
        self.ui_changed = Instant::now();
        if visible || silenced {
            return;
        }
        // One notification per chat, updated with every new message (the
        // system keeps its creation time and moves its update time), posted
        // once the app has processed the message.
        let title = app.name_of(from);
        let pkg = app.def.package;
        let when_ms = now - now.rem_euclid(1000);
        let [lo, hi] = self.cfg.post_lag_ms;
        let lag = lo + (self.random() * (hi - lo) as f64) as u64;
        let shown = Instant::now() + Duration::from_millis(lag);
        let now = now + lag as i64;
        let app = &mut self.apps[idx];
        let title_ref = &title;
        if let Some(n) = self
            .notifications
            .iter_mut()
            .find(|n| n.package == pkg && n.title == *title_ref)
        {
            n.text = text.to_string();
            n.when_ms = when_ms;
            n.updated_ms = now;
            n.shown = shown;
            n.messages.push((text.to_string(), when_ms));
            return;
        }
        let n = Notification {
            package: pkg.to_string(),
            id: self.next_notification,
            uid: app.uid,
            title,
            text: text.to_string(),
            when_ms,
            created_ms: now,
            updated_ms: now,
            shown,
            messages: vec![(text.to_string(), when_ms)],
            channel: app.def.channel,
        };
        self.next_notification += 1;
        self.notifications.push(n);
    }

    /// Draws from the phone's random generator (xorshift64*): `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}
