//! `matador devices`: lists the phones the adb server (or direct TCP
//! addresses) can reach, with model, Android version, battery, screen, Wi-Fi,
//! root and the installed versions of the apps under test.

use anyhow::{Context, Result};
use clap::Args;
use matador_device::adb::{self, Target};
use matador_device::phone::{Device, DeviceInfo};
use matador_device::profile::AppProfile;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::device as matador_device;

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
}

/// Runs `matador devices`.
pub fn run(args: DevicesArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let apps = AppProfile::load_dir(&args.apps)
            .with_context(|| format!("app profiles in {}", args.apps.display()))?;
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
                            if i.locked { " locked" } else { "" },
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
