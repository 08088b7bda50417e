//! `matador devices`: lists the phones the adb server (or direct TCP
//! addresses) can reach, with model, Android version, battery, screen, Wi-Fi,
//! root and the installed versions of the apps under test.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use matador_device::adb::{self, Target};
use matador_device::phone::{Device, DeviceInfo};
use matador_device::profile::AppProfile;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;

use matador::device as matador_device;

/// The app profiles of `dir` (the one loader, as a campaign uses), in id order.
fn load_apps(dir: &std::path::Path) -> Result<Vec<AppProfile>> {
    let mut apps = matador::scenario::apps::AppProfiles::load_dir(dir)
        .with_context(|| format!("app profiles in {}", dir.display()))?
        .apps;
    apps.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(apps)
}

/// Arguments of `matador devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// adb server address (default: 127.0.0.1 and ANDROID_ADB_SERVER_PORT or 5037).
    #[arg(long)]
    pub adb_server: Option<SocketAddrV4>,
    /// `adb connect` these addresses first (repeatable).
    #[arg(long)]
    pub connect: Vec<SocketAddr>,
    /// Query these adbd addresses directly, without a server (repeatable).
    #[arg(long)]
    pub direct: Vec<SocketAddr>,
    /// App profiles directory.
    #[arg(long, default_value = "device-profiles/apps")]
    pub apps: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Optional action (default: list the phones).
    #[command(subcommand)]
    pub action: Option<DevicesAction>,
}

/// `matador devices` actions.
#[derive(Debug, Subcommand)]
pub enum DevicesAction {
    /// Checks each phone is ready for a lab campaign; prints the exact steps for what is missing.
    Prepare(PrepareArgs),
    /// Smoke test after an app update: launch, dismiss interruptions, open
    /// the chat, find every selector (UI dump saved when one is missing);
    /// `--send`: one marked message each way with its receipt time.
    Try(TryArgs),
}

/// Arguments of `matador devices try`.
#[derive(Debug, Args)]
pub struct TryArgs {
    /// App ids (repeatable or comma-separated).
    #[arg(long = "app", value_delimiter = ',', required = true)]
    pub app: Vec<String>,
    /// The two phone profile ids, `A,B`.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    pub phones: Vec<String>,
    /// Phone profiles directory.
    #[arg(long, default_value = "device-profiles/phones")]
    pub profiles: PathBuf,
    /// Send one marked message each way and report the receipt times.
    #[arg(long)]
    pub send: bool,
    /// Where UI dumps of missing selectors (and the events) are saved.
    #[arg(long, default_value = "devices-try")]
    pub out: PathBuf,
}

/// Arguments of `matador devices prepare` (the adb options are those of `matador devices`).
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The lab SSID the phones must be connected to.
    #[arg(long)]
    pub ssid: Option<String>,
    /// Real-lab description: its SSID and the phones that must be connected (by serial).
    #[arg(long)]
    pub lab: Option<PathBuf>,
    /// Apps that must be installed (app ids; default: every profile in --apps).
    #[arg(long = "app")]
    pub app: Vec<String>,
    /// The per-app firewall is wanted: the phones need root.
    #[arg(long)]
    pub firewall: bool,
}

/// Runs `matador devices`.
pub fn run(args: DevicesArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some(DevicesAction::Prepare(p)) = &args.action {
        return rt.block_on(prepare(&args, p));
    }
    if let Some(DevicesAction::Try(t)) = &args.action {
        return rt.block_on(try_apps(&args, t));
    }
    rt.block_on(async move {
        let apps = load_apps(&args.apps)?;
        let mut rows: Vec<Result<DeviceInfo, String>> = Vec::new();
        let mut targets: Vec<Target> = args.direct.iter().map(|a| Target::Direct(*a)).collect();
        if args.direct.is_empty() || !args.connect.is_empty() || args.adb_server.is_some() {
            let server = args.adb_server.unwrap_or_else(adb::default_server);
            adb::ensure_server(server).await?;
            for a in &args.connect {
                adb::connect_device(server, *a).await?;
            }
            // Freshly connected devices need a moment to come online.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            let listed = loop {
                let l = adb::list_devices(server).await?;
                if l.iter()
                    .all(|d| d.state != "offline" && d.state != "connecting")
                    || std::time::Instant::now() > deadline
                {
                    break l;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            };
            for d in listed {
                if d.state == "device" {
                    targets.push(Target::Server {
                        server,
                        serial: d.serial,
                    });
                } else {
                    rows.push(Err(format!("{}: {}", d.serial, d.state)));
                }
            }
        }
        for t in targets {
            let name = t.name();
            let r = match Device::open(t).await {
                Ok(d) => d.info(&apps).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            rows.push(r.map_err(|e| {
                if e.starts_with(&name) {
                    e
                } else {
                    format!("{name}: {e}")
                }
            }));
        }
        let ok = rows.iter().filter(|r| r.is_ok()).count();
        if args.json {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| match r {
                    Ok(i) => serde_json::to_value(i).unwrap_or_default(),
                    Err(e) => serde_json::json!({ "error": e }),
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            if rows.is_empty() {
                println!("no devices");
            }
            for r in &rows {
                match r {
                    Ok(i) => {
                        println!(
                            "{}  {}  Android {}  battery {}  screen {} {}{}  {}  root {}",
                            i.device,
                            i.model,
                            i.android,
                            i.battery
                                .map(|b| format!("{b}%"))
                                .unwrap_or_else(|| "?".into()),
                            i.screen,
                            if i.awake { "on" } else { "off" },
                            match i.locked {
                                Some(true) => " locked",
                                Some(false) => "",
                                None => " lock-state-unknown",
                            },
                            i.wifi,
                            if i.root { "yes" } else { "no" }
                        );
                        let apps: Vec<String> = i
                            .apps
                            .iter()
                            .map(|(id, v)| format!("{id} {}", v.as_deref().unwrap_or("-")))
                            .collect();
                        println!("    apps: {}", apps.join(", "));
                    }
                    Err(e) => println!("{e}"),
                }
            }
        }
        Ok(if ok == rows.len() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

async fn prepare(args: &DevicesArgs, p: &PrepareArgs) -> Result<ExitCode> {
    use matador_device::prepare::{self, PrepareOptions};
    let mut apps = load_apps(&args.apps)?;
    if !p.app.is_empty() {
        for id in &p.app {
            anyhow::ensure!(
                apps.iter().any(|a| &a.id == id),
                "--app {id}: no profile in {}",
                args.apps.display()
            );
        }
        apps.retain(|a| p.app.contains(&a.id));
    }
    let lab = match &p.lab {
        Some(f) => Some(matador::net::router::RealLab::load(f)?),
        None => None,
    };
    let opts = PrepareOptions {
        ssid: p
            .ssid
            .clone()
            .or_else(|| lab.as_ref().map(|l| l.router.ssid.clone())),
        apps,
        firewall: p.firewall,
    };
    let mut found = Vec::new();
    let mut targets: Vec<(String, Target)> = args
        .direct
        .iter()
        .map(|a| (a.to_string(), Target::Direct(*a)))
        .collect();
    if args.direct.is_empty() || !args.connect.is_empty() || args.adb_server.is_some() {
        let server = args.adb_server.unwrap_or_else(adb::default_server);
        adb::ensure_server(server).await?;
        for a in &args.connect {
            adb::connect_device(server, *a).await?;
        }
        for d in adb::list_devices(server).await? {
            if d.state == "device" {
                targets.push((
                    d.serial.clone(),
                    Target::Server {
                        server,
                        serial: d.serial,
                    },
                ));
            } else {
                found.push(prepare::not_usable(&d.serial, &d.state));
            }
        }
    }
    for (serial, t) in targets {
        let r = match Device::open(t).await {
            Ok(d) => prepare::check_phone(&d, &serial, &opts).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(r) => found.push(r),
            Err(e) => found.push(prepare::not_usable(&serial, &format!("error: {e}"))),
        }
    }
    if let Some(l) = &lab {
        for ph in &l.phones {
            if !found.iter().any(|f| f.serial == ph.serial) {
                let mut r = prepare::not_usable(&ph.serial, "missing");
                r.items[0].detail = format!("phone {} ({}) is not connected", ph.name, ph.serial);
                found.push(r);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        if found.is_empty() {
            println!("no devices (connect the phones and enable USB debugging)");
        }
        for r in &found {
            println!(
                "{}: {}",
                r.serial,
                if r.ready() { "ready" } else { "NOT READY" }
            );
            for i in &r.items {
                println!(
                    "  {} {:<22} {}",
                    if i.ok { "ok  " } else { "MISS" },
                    i.name,
                    i.detail
                );
                for (n, s) in i.steps.iter().enumerate() {
                    println!("         {}. {s}", n + 1);
                }
            }
        }
    }
    let ready = !found.is_empty() && found.iter().all(|r| r.ready());
    Ok(if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn try_apps(args: &DevicesArgs, t: &TryArgs) -> Result<ExitCode> {
    use matador_device::api::{Contact, Phone};
    use matador_device::profile::PhoneProfile;
    use matador_device::trial;
    anyhow::ensure!(
        t.phones.len() == 2,
        "--phones takes two phone profile ids, A,B (got {:?})",
        t.phones
    );
    let apps = load_apps(&args.apps)?;
    for id in &t.app {
        anyhow::ensure!(
            apps.iter().any(|a| &a.id == id),
            "--app {id}: no profile in {}",
            args.apps.display()
        );
    }
    let load = |id: &str| PhoneProfile::load(&t.profiles.join(format!("{id}.yaml")));
    let (pa, pb) = (load(&t.phones[0])?, load(&t.phones[1])?);
    let mut a = Phone::connect(&pa, &apps).await?;
    let mut b = Phone::connect(&pb, &apps).await?;
    a.set_measurement(Some(&t.out));
    b.set_measurement(Some(&t.out));
    let mut reports = Vec::new();
    for app in &t.app {
        let (ca, cb) = (Contact::of(&pa, app)?, Contact::of(&pb, app)?);
        let (mut ra, mut rb) = tokio::join!(trial::check(&a, app, &cb), trial::check(&b, app, &ca));
        if t.send && ra.ok() && rb.ok() {
            let bound = std::time::Duration::from_secs(60);
            if let Err(e) = trial::exchange((&a, &mut ra), (&b, &mut rb), &ca, None, bound).await {
                ra.error = Some(format!("sending to {}: {e}", pb.id));
            } else if let Err(e) =
                trial::exchange((&b, &mut rb), (&a, &mut ra), &cb, Some(&ca), bound).await
            {
                rb.error = Some(format!("sending to {}: {e}", pa.id));
            }
        }
        reports.push(ra);
        reports.push(rb);
    }
    for r in &reports {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            let missing: Vec<&String> = r
                .selectors
                .iter()
                .filter(|(_, v)| !**v)
                .map(|(k, _)| k)
                .collect();
            println!(
                "{} {} ({}, Android {}): {}",
                r.phone,
                r.app,
                r.serial,
                r.android,
                if r.ok() {
                    "ok".to_string()
                } else {
                    format!("FAILED {missing:?}")
                }
            );
            if !r.interruptions.is_empty() {
                println!("    dismissed: {}", r.interruptions.join(", "));
            }
            if let Some(s) = &r.sent {
                println!("    sent {:?} at {:.3}", s.text, s.t);
            }
            if let Some(g) = &r.received {
                println!(
                    "    received at {:.3} via {:?} (−{:.3}/+{:.3} s)",
                    g.t, g.via, g.uncertainty_s.before, g.uncertainty_s.after
                );
            }
            if let Some(e) = &r.error {
                println!("    error: {e}");
            }
        }
    }
    // Keep the phones usable: drop them (and their connections) explicitly.
    drop((a, b));
    Ok(if reports.iter().all(trial::TryReport::ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
