//! `matador lab-sim …` (hidden): runs one simulated phone, one app backend or
//! a static DNS server as its own process, for the virtual lab and tests.
//! Each prints one `ready …` line on stdout once listening, then runs until
//! SIGTERM/SIGINT.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use phone::backend::Backend;
use phone::config::{BackendConfig, PhoneSimConfig};
use phone::sim::PhoneSim;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use matador_lab::phone;

/// Arguments of `lab-sim`.
#[derive(Debug, Args)]
pub struct LabSimArgs {
    /// What to run.
    #[command(subcommand)]
    pub what: What,
}

/// Simulator programs.
#[derive(Debug, Subcommand)]
pub enum What {
    /// A simulated phone (ADB listener, apps, background traffic).
    Phone {
        /// Phone configuration (YAML).
        #[arg(long)]
        config: PathBuf,
        /// Override the ADB listen address from the configuration.
        #[arg(long)]
        adb_listen: Option<SocketAddr>,
        /// Control socket (unplug, replug, unplug-for MS, status).
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// An app backend relay.
    Backend {
        /// App id (whatsapp, wechat, threema, signal, telegram, line, kakaotalk).
        #[arg(long)]
        app: String,
        /// Listen address (repeatable), e.g. 0.0.0.0:443.
        #[arg(long, required = true)]
        listen: Vec<SocketAddr>,
        /// Delay before relaying, in ms.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Drop every message.
        #[arg(long)]
        fail: bool,
        /// WeChat newgetdns answer `host=ip` (repeatable); default: own address.
        #[arg(long)]
        newgetdns: Vec<String>,
        /// Control socket (fail on|off, delay MS, status).
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// A static DNS server (A records) for loopback runs.
    Dns {
        /// UDP listen address.
        #[arg(long)]
        listen: SocketAddr,
        /// `name=ip` (repeatable).
        #[arg(long)]
        record: Vec<String>,
    },
    /// Sends one line to a control socket and prints the reply.
    Ctl {
        /// Control socket.
        socket: PathBuf,
        /// Command words.
        #[arg(required = true)]
        command: Vec<String>,
    },
}

fn pairs(items: &[String], what: &str) -> Result<BTreeMap<String, IpAddr>> {
    let mut m = BTreeMap::new();
    for it in items {
        let (k, v) = it
            .split_once('=')
            .with_context(|| format!("{what} {it:?}: expected name=ip"))?;
        m.insert(
            k.to_ascii_lowercase(),
            v.parse()
                .with_context(|| format!("{what} {it:?}: bad address"))?,
        );
    }
    Ok(m)
}

async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

fn ready(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs `lab-sim`.
pub fn run(args: LabSimArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match args.what {
            What::Phone {
                config,
                adb_listen,
                control,
            } => {
                let mut cfg = PhoneSimConfig::load(&config)?;
                if let Some(a) = adb_listen {
                    cfg.adb_listen = a;
                }
                let serial = cfg.serial();
                let name = cfg.name.clone();
                let sim = Arc::new(PhoneSim::start(cfg).await?);
                let _ctl = match &control {
                    Some(path) => {
                        let s = sim.clone();
                        Some(
                            phone::control::serve(path, Arc::new(move |l: &str| s.control(l)))
                                .await
                                .with_context(|| format!("control socket {}", path.display()))?,
                        )
                    }
                    None => None,
                };
                ready(&format!(
                    "ready phone={name} adb={} serial={serial}",
                    sim.adb_addr
                ));
                wait_for_stop().await;
                if let Some(p) = control {
                    let _ = std::fs::remove_file(p);
                }
                Ok(ExitCode::SUCCESS)
            }
            What::Backend {
                app,
                listen,
                delay_ms,
                fail,
                newgetdns,
                control,
            } => {
                let cfg = BackendConfig {
                    app,
                    listen,
                    delay_ms,
                    fail,
                    newgetdns: pairs(&newgetdns, "--newgetdns")?,
                };
                let (b, _tasks) = Backend::start(cfg).await?;
                let _ctl = match &control {
                    Some(path) => {
                        let b2 = b.clone();
                        Some(
                            phone::control::serve(
                                path,
                                Arc::new(move |l: &str| backend_control(&b2, l)),
                            )
                            .await
                            .with_context(|| format!("control socket {}", path.display()))?,
                        )
                    }
                    None => None,
                };
                let addrs: Vec<String> = b.addrs.iter().map(ToString::to_string).collect();
                ready(&format!(
                    "ready backend={} listen={}",
                    b.app,
                    addrs.join(",")
                ));
                wait_for_stop().await;
                if let Some(p) = control {
                    let _ = std::fs::remove_file(p);
                }
                Ok(ExitCode::SUCCESS)
            }
            What::Dns { listen, record } => {
                let zone = pairs(&record, "--record")?;
                let sock = tokio::net::UdpSocket::bind(listen)
                    .await
                    .with_context(|| format!("dns: cannot listen on {listen}"))?;
                let addr = sock.local_addr()?;
                let task = tokio::spawn(phone::dns::serve(sock, zone));
                ready(&format!("ready dns={addr}"));
                wait_for_stop().await;
                task.abort();
                Ok(ExitCode::SUCCESS)
            }
            What::Ctl { socket, command } => {
                let reply = phone::control::request(&socket, &command.join(" "))
                    .await
                    .with_context(|| format!("control socket {}", socket.display()))?;
                println!("{reply}");
                if reply.starts_with("error") {
                    bail!("{reply}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

fn backend_control(b: &Backend, line: &str) -> String {
    let mut w = line.split_whitespace();
    let mut f = b.faults.lock().unwrap_or_else(|e| e.into_inner());
    match (w.next(), w.next()) {
        (Some("fail"), Some(v @ ("on" | "off"))) => {
            f.fail = v == "on";
            format!("ok fail={}", f.fail)
        }
        (Some("delay"), Some(ms)) => match ms.parse() {
            Ok(ms) => {
                f.delay_ms = ms;
                format!("ok delay_ms={ms}")
            }
            Err(_) => "error: delay MS".into(),
        },
        (Some("status"), None) => format!(
            "ok app={} fail={} delay_ms={} relayed={}",
            b.app,
            f.fail,
            f.delay_ms,
            b.relayed()
        ),
        _ => "error: unknown command (fail on|off, delay MS, status)".into(),
    }
}
