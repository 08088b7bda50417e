//! Shared helpers for the phone simulator and device tests: a private adb
//! server per test, loopback app backends and DNS, two simulated phones.
#![allow(dead_code)]

use matador_lab::phone::backend::Backend;
use matador_lab::phone::config::{
    BackendConfig, PhoneSimConfig, SimAppConfig, SimContact, UiDumpConfig,
};
use matador_lab::phone::sim::PhoneSim;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The seven apps.
pub const APPS: [&str; 7] = [
    "whatsapp",
    "wechat",
    "threema",
    "signal",
    "telegram",
    "line",
    "kakaotalk",
];

/// Accounts of phone A and B per app.
pub fn account(app: &str, phone: char) -> String {
    let n = if phone == 'a' { 1 } else { 2 };
    match app {
        "whatsapp" | "signal" | "telegram" => format!("+491510000000{n}"),
        "threema" => format!("LAB{}000{n}", phone.to_ascii_uppercase()),
        "wechat" => format!("wxid_lab{phone}000{n}"),
        _ => format!("lab{phone}000{n}"),
    }
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// A fresh loopback /24 (127.X.Y.0) for this test, so parallel tests never
/// share backend addresses.
pub fn loopback_net() -> [u8; 3] {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    [
        127,
        10 + (pid % 200) as u8,
        (n * 7 + pid / 200 % 31) as u8 % 250 + 1,
    ]
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private adb server, killed on drop.
pub struct AdbServer {
    /// Its port.
    pub port: u16,
}

impl AdbServer {
    /// Starts `adb -P PORT start-server`; fails the test clearly if adb is missing.
    pub fn start() -> AdbServer {
        let port = free_port();
        let out = Command::new("adb")
            .args(["-P", &port.to_string(), "start-server"])
            .output()
            .expect("the Debian `adb` package must be installed (scripts/install-deps.sh)");
        assert!(
            out.status.success(),
            "adb start-server failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        AdbServer { port }
    }

    /// Address for the device layer.
    pub fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port)
    }

    /// The device layer's [`Device`] of the phone at `phone`, opened
    /// through this server (the phone connected already).
    ///
    /// [`Device`]: matador::device::phone::Device
    pub async fn device(&self, phone: SocketAddr) -> matador::device::phone::Device {
        matador::device::phone::Device::open(matador::device::adb::Target::Server {
            server: self.addr(),
            serial: phone.to_string(),
        })
        .await
        .unwrap_or_else(|e| panic!("open {phone} through adb server {}: {e}", self.port))
    }

    /// Runs `adb -P PORT args…`: (status code, stdout, stderr).
    pub fn adb(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("adb")
            .arg("-P")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `adb connect` and wait until the device is listed as `device`.
    pub fn connect(&self, addr: SocketAddr) {
        let (_, out, err) = self.adb(&["connect", &addr.to_string()]);
        // With AUTH, adb first reports "failed to authenticate" while the
        // phone shows its prompt; the state then turns to `device`.
        assert!(
            out.contains("connected to") || out.contains("authenticate"),
            "adb connect {addr}: {out}{err}"
        );
        self.wait_state(&addr.to_string(), "device", 15);
    }

    /// Waits until `adb devices` shows `serial` in `state`.
    pub fn wait_state(&self, serial: &str, state: &str, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let (_, out, _) = self.adb(&["devices"]);
            if out
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [serial, state])
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{serial} not in state {state} after {secs}s: {out}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

impl Drop for AdbServer {
    fn drop(&mut self) {
        let _ = Command::new("adb")
            .args(["-P", &self.port.to_string(), "kill-server"])
            .output();
    }
}

/// Loopback backends for all apps plus a DNS server resolving the apps'
/// host names to them.
pub struct Backends {
    /// The DNS server address.
    pub dns: SocketAddr,
    /// Backends by app id.
    pub by_app: BTreeMap<String, Backend>,
    /// Host names → addresses.
    pub zone: BTreeMap<String, IpAddr>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the backends (inside a tokio runtime). Apps listen on their real
/// ports on distinct loopback addresses; WeChat also serves its HTTP DNS.
pub async fn start_backends(delay_ms: u64) -> Backends {
    let net = loopback_net();
    let mut by_app = BTreeMap::new();
    let mut zone = BTreeMap::new();
    let mut tasks = Vec::new();
    for (i, app) in APPS.iter().enumerate() {
        let ip = IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], 10 + i as u8));
        let def = matador_lab::phone::apps::app_def(app).unwrap();
        let mut listen = vec![SocketAddr::new(ip, def.port)];
        if *app == "wechat" {
            listen.push(SocketAddr::new(ip, 80));
            zone.insert("dns.weixin.qq.com".to_string(), ip);
        }
        zone.insert(def.host.to_string(), ip);
        let (b, t) = Backend::start(BackendConfig {
            app: app.to_string(),
            listen,
            delay_ms,
            fail: false,
            newgetdns: BTreeMap::new(),
        })
        .await
        .unwrap();
        tasks.extend(t);
        by_app.insert(app.to_string(), b);
    }
    // WeChat's plain DNS name points nowhere useful: only the HTTP DNS knows.
    zone.remove("long.weixin.qq.com");
    let sock = tokio::net::UdpSocket::bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], 53)),
        5353,
    ))
    .await
    .unwrap();
    let dns = sock.local_addr().unwrap();
    tasks.push(tokio::spawn(matador_lab::phone::dns::serve(
        sock,
        zone.clone(),
    )));
    Backends {
        dns,
        by_app,
        zone,
        _tasks: tasks,
    }
}

/// A phone configuration with all seven apps; A and B know each other as
/// "Lab A"/"Lab B". `variant` picks the app versions, `small` the 720x1600 screen.
pub fn phone_config(
    name: char,
    dns: Option<SocketAddr>,
    variant: usize,
    small: bool,
) -> PhoneSimConfig {
    let mut c = PhoneSimConfig::new(&format!("phone-{name}"));
    let peer = if name == 'a' { 'b' } else { 'a' };
    c.dns = dns;
    c.rooted = name == 'a';
    c.cold_start_ms = 300;
    // Prepared as docs/real-lab.md asks: ADBKeyboard installed (a phone
    // without it is built by clearing this).
    c.adb_keyboard = true;
    if small {
        c.width = 720;
        c.height = 1600;
        c.density = 320;
        c.model = "Galaxy A14".into();
        c.manufacturer = "samsung".into();
        c.device = "a14".into();
    }
    for app in APPS {
        c.apps.insert(
            app.to_string(),
            SimAppConfig {
                variant,
                account: account(app, name),
                contacts: vec![
                    SimContact {
                        name: "Carol".into(),
                        account: format!("{}9", account(app, peer)),
                    },
                    SimContact {
                        name: format!("Lab {}", peer.to_ascii_uppercase()),
                        account: account(app, peer),
                    },
                ],
                server: None,
            },
        );
    }
    c
}

/// Quick `uiautomator dump`s that never fail, for a test whose subject is
/// not timing (quoting, selectors): such a test sends tens of messages and a
/// phone's 1–3 s dumps would make it minutes long. Said explicitly in each
/// test that uses it; the tests of the device layer's timing and the lab
/// campaigns (device_phone_api, campaign_phones, chaos_campaign,
/// campaign_lab_e2e) keep the phone's realistic dumps.
pub fn not_about_timing(c: &mut PhoneSimConfig) {
    c.ui_dump = UiDumpConfig::fast();
}

/// Starts a simulated phone.
pub async fn start_phone(cfg: PhoneSimConfig) -> PhoneSim {
    PhoneSim::start(cfg).await.unwrap()
}

/// Path of the repository's app profiles.
pub fn app_profiles() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("device-profiles/apps")
}

/// The repository's app profiles, read by the one profile loader (as a
/// campaign does), in id order.
pub fn load_app_profiles() -> Vec<matador::device::profile::AppProfile> {
    let mut apps = matador::scenario::apps::AppProfiles::load_dir(&app_profiles())
        .unwrap()
        .apps;
    apps.sort_by(|a, b| a.id.cmp(&b.id));
    apps
}

/// Backends, phones A and B (variant 0 / variant 1 on the small screen,
/// their configurations adjusted by `edit`) and a private adb server
/// connected to both.
pub struct TwoPhones {
    /// The app backends and DNS.
    pub backends: Backends,
    /// Phone A.
    pub a: PhoneSim,
    /// Phone B.
    pub b: PhoneSim,
    /// The adb server.
    pub server: AdbServer,
}

impl TwoPhones {
    /// Both phones through the adb server, woken and unlocked.
    pub async fn unlocked(
        &self,
    ) -> (
        matador::device::phone::Device,
        matador::device::phone::Device,
    ) {
        let da = self.server.device(self.a.adb_addr).await;
        let db = self.server.device(self.b.adb_addr).await;
        da.wake_unlock().await.unwrap();
        db.wake_unlock().await.unwrap();
        (da, db)
    }
}

/// Starts [`TwoPhones`].
pub async fn two_phones(edit: impl FnOnce(&mut PhoneSimConfig, &mut PhoneSimConfig)) -> TwoPhones {
    let backends = start_backends(0).await;
    let mut ca = phone_config('a', Some(backends.dns), 0, false);
    let mut cb = phone_config('b', Some(backends.dns), 1, true);
    edit(&mut ca, &mut cb);
    let a = start_phone(ca).await;
    let b = start_phone(cb).await;
    let server = AdbServer::start();
    server.connect(a.adb_addr);
    server.connect(b.adb_addr);
    TwoPhones {
        backends,
        a,
        b,
        server,
    }
}
