//! `matador lab up|down|status|exec`: the virtual lab (network namespaces on
//! this machine, see docs/lab.md). Needs root.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use matador_lab::build::{self, DEFAULT_STATE_DIR, Lab, UpOptions};
use matador_lab::topology::Topology;

/// Arguments of `lab`.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Directory of lab state files and lab folders.
    #[arg(long, global = true, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub what: LabCmd,
}

/// Lab subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCmd {
    /// Builds a lab from a topology file and prints its ADB and SSH endpoints.
    Up {
        /// Topology file (default: lab/demo.yaml of the source tree).
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Stay in the foreground and tear down on Ctrl-C/SIGTERM.
        #[arg(long)]
        foreground: bool,
        /// Do not start the phone simulators.
        #[arg(long)]
        no_phones: bool,
        /// Do not start OpenSSH servers on the nodes.
        #[arg(long)]
        no_ssh: bool,
        /// Also copy lab.json here.
        #[arg(long)]
        lab_json: Option<PathBuf>,
    },
    /// Removes a lab (all labs with --all), also one left by a crash.
    Down {
        /// Lab id (default: the only lab).
        id: Option<String>,
        /// Remove every lab in the state directory.
        #[arg(long)]
        all: bool,
    },
    /// Shows labs, their processes and tunnel health.
    Status {
        /// Lab id (default: all).
        id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs a command inside a lab namespace (router, core, a phone, node,
    /// data centre, `<node>-h1`, censor …).
    Exec {
        /// Lab id (default: the only lab).
        #[arg(long)]
        lab: Option<String>,
        /// Namespace role.
        role: String,
        /// The command and its arguments.
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
    /// Serves the Android background-service hosts (inside a lab namespace).
    #[command(hide = true)]
    Noise {
        /// Address to serve on (repeat for several, e.g. IPv4 and IPv6).
        #[arg(long, required = true)]
        listen: Vec<std::net::IpAddr>,
    },
    /// Runs a link's userspace delay relay (NFQUEUE, inside the namespace
    /// owning the link).
    #[command(hide = true)]
    Delay {
        /// Delay added to every packet of the link, in milliseconds.
        #[arg(long)]
        ms: u32,
    },
    /// Runs the censor's on-path injector (inside the censor namespace).
    #[command(hide = true)]
    Censor {
        /// Interface facing the censored node.
        #[arg(long)]
        iface: String,
        /// Injector configuration (JSON of the topology's `censor.race`).
        #[arg(long)]
        config: String,
    },
}

fn signal_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
            }
            f.store(true, Ordering::SeqCst);
        });
    });
    flag
}

fn only_lab(state_dir: &std::path::Path, id: Option<String>) -> Result<String> {
    if let Some(id) = id {
        return Ok(id);
    }
    let labs = build::list(state_dir);
    match labs.len() {
        0 => bail!("no lab in {}", state_dir.display()),
        1 => Ok(labs[0].id.clone()),
        _ => bail!(
            "several labs in {} ({}): name one",
            state_dir.display(),
            labs.iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs `lab`.
pub fn run(args: LabArgs) -> Result<ExitCode> {
    let state_dir = args.state_dir;
    match args.what {
        LabCmd::Up {
            topology,
            foreground,
            no_phones,
            no_ssh,
            lab_json,
        } => up(
            &state_dir, topology, foreground, !no_phones, !no_ssh, lab_json,
        ),
        LabCmd::Down { id, all } => down(&state_dir, id, all),
        LabCmd::Status { id, json } => status(&state_dir, id, json),
        LabCmd::Exec { lab, role, command } => exec(&state_dir, lab, &role, &command),
        LabCmd::Delay { ms } => {
            matador_lab::delay::run(Duration::from_millis(u64::from(ms)), || {
                println!("ready delay={ms}ms queue={}", matador_lab::delay::QUEUE);
            })?;
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Censor { iface, config } => {
            let cfg: matador_lab::censor::RaceConfig =
                serde_json::from_str(&config).context("censor injector configuration")?;
            matador_lab::censor::run(&iface, &cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        LabCmd::Noise { listen } => noise(&listen),
    }
}

/// `lab up`: brings a lab up, prints it, then detaches or (foreground)
/// waits for Ctrl-C and tears it down.
fn up(
    state_dir: &Path,
    topology: Option<PathBuf>,
    foreground: bool,
    phones: bool,
    ssh: bool,
    lab_json: Option<PathBuf>,
) -> Result<ExitCode> {
    let path = topology.unwrap_or_else(Topology::demo_path);
    let topology = Topology::load(&path)?;
    let cancel = signal_flag();
    let lab = Lab::up(UpOptions {
        topology,
        state_dir: state_dir.to_path_buf(),
        exe: std::env::current_exe().context("own executable")?,
        phones,
        ssh,
        cancel: Some(cancel.clone()),
    })
    .with_context(|| format!("lab up ({})", path.display()))?;
    print_up(&lab);
    if let Some(p) = lab_json {
        std::fs::copy(&lab.desc_path, &p)
            .with_context(|| format!("copy lab.json to {}", p.display()))?;
    }
    if foreground {
        println!("running; Ctrl-C tears the lab down");
        while !cancel.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let problems = lab.down();
        for p in &problems {
            eprintln!("warning: {p}");
        }
        println!("lab down");
    } else {
        let st = lab.detach()?;
        println!(
            "detached; remove with: matador lab down (state {})",
            st.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What `lab up` prints: phones, adb server, nodes, tunnels, files.
fn print_up(lab: &Lab) {
    println!(
        "lab {} ({}) up in {:.2} s",
        lab.id(),
        lab.desc.name,
        lab.up_time.as_secs_f64()
    );
    for p in &lab.desc.phones {
        println!(
            "phone {:<10} adb {:<21} serial {:<14} addr {:<15} via {}",
            p.name, p.adb, p.serial, p.addr, p.node
        );
    }
    if let Some(port) = lab.desc.adb_server {
        println!(
            "adb server 127.0.0.1:{port} has the phones attached \
             (ANDROID_ADB_SERVER_PORT={port} adb devices; matador devices)"
        );
    }
    for n in lab.desc.nodes.iter().filter(|n| n.kind == "node") {
        match &n.ssh {
            Some(s) => println!(
                "node  {:<10} {} ssh {}@{}:{} -i {} -o UserKnownHostsFile={}",
                n.name,
                n.country,
                s.user,
                s.host,
                s.port,
                s.identity.display(),
                s.known_hosts.display()
            ),
            None => println!("node  {:<10} {} (no ssh)", n.name, n.country),
        }
    }
    for h in lab.health() {
        match h {
            Ok(h) => println!("tunnel {:<9} ok, rtt {:.3} ms", h.node, h.rtt_ms),
            Err(e) => println!("tunnel: {e}"),
        }
    }
    println!("lab.json {}", lab.desc_path.display());
    println!("state    {}", lab.state_path().display());
}

/// `lab down [ID | --all]`.
fn down(state_dir: &Path, id: Option<String>, all: bool) -> Result<ExitCode> {
    let ids: Vec<String> = if all {
        build::list(state_dir).into_iter().map(|l| l.id).collect()
    } else {
        vec![only_lab(state_dir, id)?]
    };
    let mut bad = false;
    for id in ids {
        let t = std::time::Instant::now();
        let problems = build::down(state_dir, &id)?;
        for p in &problems {
            eprintln!("warning: lab {id}: {p}");
        }
        bad |= !problems.is_empty();
        println!("lab {id} down in {:.2} s", t.elapsed().as_secs_f64());
    }
    Ok(if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `lab status [ID] [--json]`: exit 1 when a tunnel is unhealthy.
fn status(state_dir: &Path, id: Option<String>, json: bool) -> Result<ExitCode> {
    let labs: Vec<_> = build::list(state_dir)
        .into_iter()
        .filter(|l| id.as_ref().is_none_or(|i| *i == l.id))
        .collect();
    let out: Vec<serde_json::Value> = labs.iter().map(status_json).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if out.is_empty() {
        println!("no lab in {}", state_dir.display());
    } else {
        print_status(&out);
    }
    let unhealthy = out.iter().any(|l| {
        l["tunnels"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["ok"] != true)
    });
    Ok(if unhealthy {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One lab's status as `lab status --json` prints it (tunnels checked now).
fn status_json(l: &build::LabEntry) -> serde_json::Value {
    let health: Vec<serde_json::Value> = l
        .desc
        .as_ref()
        .map(|d| {
            build::tunnel_checks(d)
                .iter()
                .map(|c| match matador::net::health::check_tunnel(c) {
                    Ok(h) => serde_json::json!({"node": h.node, "ok": true, "rtt_ms": h.rtt_ms, "handshake_age_s": h.handshake_age_s}),
                    Err(e) => serde_json::json!({"node": c.node, "ok": false, "error": e.to_string()}),
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "id": l.id,
        "name": l.desc.as_ref().map(|d| d.name.clone()),
        "phase": l.phase,
        "stale": l.stale,
        "state": l.state_path,
        "processes": l.processes.iter().map(|(n, a)| serde_json::json!({"name": n, "running": a})).collect::<Vec<_>>(),
        "tunnels": health,
    })
}

/// `lab status` as text, from the JSON form.
fn print_status(out: &[serde_json::Value]) {
    for l in out {
        let procs = l["processes"].as_array().map(Vec::len).unwrap_or(0);
        let running = l["processes"]
            .as_array()
            .map(|a| a.iter().filter(|p| p["running"] == true).count())
            .unwrap_or(0);
        println!(
            "lab {} {} phase {} stale {} processes {running}/{procs}",
            l["id"].as_str().unwrap_or(""),
            l["name"].as_str().unwrap_or("?"),
            l["phase"],
            l["stale"]
        );
        for t in l["tunnels"].as_array().into_iter().flatten() {
            if t["ok"] == true {
                println!(
                    "  tunnel {} ok rtt {} ms",
                    t["node"].as_str().unwrap_or(""),
                    t["rtt_ms"]
                );
            } else {
                println!(
                    "  tunnel {} FAILED: {}",
                    t["node"].as_str().unwrap_or(""),
                    t["error"].as_str().unwrap_or("")
                );
            }
        }
    }
}

/// `lab exec [--lab ID] ROLE COMMAND…` inside a namespace of the lab.
fn exec(state_dir: &Path, lab: Option<String>, role: &str, command: &[String]) -> Result<ExitCode> {
    let id = only_lab(state_dir, lab)?;
    let ns = format!("mt{id}-{role}");
    matador::net::netns::check_ns_name(&ns)?;
    if !matador::net::netns::exists(&ns) {
        bail!("lab {id} has no namespace {role:?} ({ns})");
    }
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(command)
        .status()
        .with_context(|| format!("ip netns exec {ns} {}", command.join(" ")))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

/// `lab noise --listen IP…` (run by the lab): Android background-service
/// hosts until SIGTERM.
fn noise(listen: &[std::net::IpAddr]) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut _tasks = Vec::new();
        for ip in listen {
            _tasks.extend(
                matador_lab::noise::serve(*ip)
                    .await
                    .with_context(|| format!("noise hosts on {ip}"))?,
            );
        }
        let shown: Vec<String> = listen.iter().map(ToString::to_string).collect();
        println!("ready noise={}", shown.join(","));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}
