//! Two simulated phones (the virtual lab's `lab-sim phone`) on the router's
//! WLAN, attached the way USB phones are: their ADB listener is on the lab
//! machine's (the router namespace's) loopback — the cable — and the
//! router's own adb server (port 5037 of that namespace) `adb connect`s
//! them; the campaign then reaches each phone by serial through the server,
//! not by the direct-TCP shortcut `--lab` uses.
//!
//! The WLAN is a bridge `wlan0` on the router with one veth port per phone:
//! it stands in for the Wi-Fi card under hostapd, which cannot run
//! without a radio. Each phone's side carries the MAC of the lab
//! description and takes its address by DHCP from the router ([`join`]).

use super::{Guard, in_ns, ip, run};
use matador_lab::phone::config::{PhoneSimConfig, SimAppConfig, SimContact};

/// One phone of the rehearsal.
#[derive(Debug, Clone)]
pub struct Phone {
    /// Name (phone profile id, lab name).
    pub name: String,
    /// Wi-Fi MAC.
    pub mac: String,
    /// WLAN address.
    pub addr: String,
    /// Serial as `adb devices` lists it.
    pub serial: String,
}

/// The router's WLAN bridge (the "radio").
pub const WLAN_IF: &str = "wlan0";

/// Brings up the WLAN bridge on `router` and one phone namespace per name.
pub fn wlan(g: &mut Guard, router: &str, names: &[&str]) -> Vec<(String, String, String)> {
    ip(Some(router), &["link", "add", WLAN_IF, "type", "bridge"]);
    ip(Some(router), &["link", "set", WLAN_IF, "up"]);
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ns = g.netns(&format!("ph{i}"));
        let port = format!("p{i}");
        let mac = format!("02:00:5e:10:00:{:02x}", i + 10);
        ip(
            None,
            &[
                "link", "add", &port, "netns", router, "type", "veth", "peer", "name", "wlan0",
                "netns", &ns,
            ],
        );
        ip(Some(router), &["link", "set", &port, "master", WLAN_IF]);
        ip(Some(router), &["link", "set", &port, "up"]);
        ip(Some(&ns), &["link", "set", "wlan0", "address", &mac]);
        ip(Some(&ns), &["link", "set", "wlan0", "up"]);
        out.push((name.to_string(), ns, mac));
    }
    out
}

/// Starts the simulators (ADB on the router's loopback) and attaches them
/// to the router's adb server; `apps` installed, each phone with the
/// others in its contacts (accounts as in `matador_lab::build::account`).
pub fn start(
    g: &mut Guard,
    router: &str,
    wlan: &[(String, String, String)],
    apps: &[&str],
) -> Vec<Phone> {
    let mut phones = Vec::new();
    for (i, (name, ns, mac)) in wlan.iter().enumerate() {
        let mut c = PhoneSimConfig::new(name);
        // Prepared as docs/real-lab.md asks (ADBKeyboard installed), and
        // interrupting as real phones do (the notification prompt on first
        // start, a German UI on the second phone).
        c.adb_keyboard = true;
        c.interruptions.notification_prompt = true;
        if i == 1 {
            c.locale = "de-DE".into();
        }
        c.netns = Some(ns.clone());
        c.dns = Some("198.18.98.53:53".parse().unwrap());
        c.rooted = true;
        c.wlan_addr = format!("198.18.100.{}/24", i + 2);
        c.wlan_gateway = "198.18.100.1".into();
        c.serialno = Some(format!("REH{}{i:02}", g.id.to_ascii_uppercase()));
        for app in apps {
            let contacts = wlan
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, (n, _, _))| SimContact {
                    name: n.clone(),
                    account: matador_lab::build::account(app, j),
                })
                .collect();
            c.apps.insert(
                app.to_string(),
                SimAppConfig {
                    variant: 0,
                    account: matador_lab::build::account(app, i),
                    contacts,
                    server: None,
                },
            );
        }
        let cfg = g.dir.join(format!("sim-{name}.yaml"));
        std::fs::write(&cfg, serde_yaml_ng::to_string(&c).unwrap()).unwrap();
        let argv = vec![
            env!("CARGO_BIN_EXE_matador").to_string(),
            "lab-sim".into(),
            "phone".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--control".into(),
            g.dir.join(format!("sim-{name}.sock")).display().to_string(),
        ];
        let log = g.spawn(router, &argv, &format!("phone-{name}.log"), "ready phone=");
        let text = std::fs::read_to_string(log).unwrap();
        let adb = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("adb="))
            .expect("adb= in the simulator's ready line")
            .to_string();
        phones.push(Phone {
            name: name.clone(),
            mac: mac.clone(),
            addr: format!("198.18.100.{}", i + 2),
            serial: adb,
        });
    }
    // The router's adb server (Debian's adb) on its default port 5037, in
    // the router namespace (its loopback is the lab machine's).
    run(in_ns(router, "adb").args(["start-server"]));
    for p in &phones {
        let out = run(in_ns(router, "adb").args(["connect", &p.serial]));
        assert!(
            out.contains("connected to"),
            "adb connect {}: {out}",
            p.serial
        );
    }
    let devices = run(in_ns(router, "adb").arg("devices"));
    for p in &phones {
        assert!(
            devices
                .lines()
                .any(|l| l.starts_with(&p.serial) && l.ends_with("device")),
            "{} not listed as a device by the adb server:\n{devices}",
            p.serial
        );
    }
    phones
}

/// The phone profile (`device-profiles/phones/*.yaml` format) a lab team
/// writes for a phone on the adb server: a serial, no address, not direct.
pub fn profile(p: &Phone, apps: &[&str], i: usize) -> String {
    let mut s = format!(
        "id: {}\nserial: \"{}\"\nmodel: Pixel 6\nrooted: true\ndisplay_name: {}\naccounts:\n",
        p.name, p.serial, p.name
    );
    for app in apps {
        s += &format!("  {app}: \"{}\"\n", matador_lab::build::account(app, i));
    }
    s
}

/// The phone joins the WLAN: DHCP from the router's dnsmasq (the generated
/// static lease), then the address and default route it was given, as
/// Android's DHCP client does. Returns the lease.
pub fn join(ns: &str, mac: &str) -> super::dhcp::Lease {
    let l = super::dhcp::lease(ns, "wlan0", mac);
    let mask = l.mask.expect("DHCP lease without a subnet mask");
    let prefix = u32::from(mask).leading_ones();
    ip(
        Some(ns),
        &[
            "addr",
            "add",
            &format!("{}/{prefix}", l.addr),
            "dev",
            "wlan0",
        ],
    );
    if let Some(r) = l.router {
        ip(
            Some(ns),
            &["route", "add", "default", "via", &r.to_string()],
        );
    }
    l
}
