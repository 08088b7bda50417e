//! Runs one simulated phone: its ADB listener (the "USB cable", which can be
//! unplugged and plugged back), app network tasks and background traffic.

use super::adbd::{self, AdbContext};
use super::appnet;
use super::config::PhoneSimConfig;
use super::net::{NetSide, ShellNet};
use super::noise;
use super::shell::NetHooks;
use super::state::Phone;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Errors starting a simulated phone.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The ADB listener could not bind.
    #[error("phone {phone}: cannot listen for ADB on {addr}: {source}")]
    Bind {
        /// Phone name.
        phone: String,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The phone's network namespace could not be entered.
    #[error("phone {phone}: network side: {source}")]
    Net {
        /// Phone name.
        phone: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Invalid configuration.
    #[error("phone {phone}: {message}")]
    Config {
        /// Phone name.
        phone: String,
        /// What is wrong.
        message: String,
    },
}

/// A running simulated phone (inside a tokio runtime).
#[derive(Debug)]
pub struct PhoneSim {
    /// The phone's state.
    pub phone: Arc<Mutex<Phone>>,
    /// The ADB address (`adb connect` target).
    pub adb_addr: SocketAddr,
    plugged: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PhoneSim {
    /// Starts a phone: binds the ADB listener and starts its app network
    /// tasks and (if configured) background traffic.
    pub async fn start(cfg: PhoneSimConfig) -> Result<PhoneSim, SimError> {
        cfg.validate().map_err(|message| SimError::Config {
            phone: cfg.name.clone(),
            message,
        })?;
        let name = cfg.name.clone();
        let listen = cfg.adb_listen;
        let background = cfg.background;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| SimError::Bind {
                phone: name.clone(),
                addr: listen,
                source,
            })?;
        let adb_addr = listener.local_addr().map_err(|source| SimError::Bind {
            phone: name.clone(),
            addr: listen,
            source,
        })?;
        let phone = Arc::new(Mutex::new(Phone::new(cfg)));
        let net = NetSide::new(phone.clone()).map_err(|source| SimError::Net {
            phone: name,
            source,
        })?;
        let hooks: Arc<dyn NetHooks> = Arc::new(ShellNet(net.clone()));
        let ctx = Arc::new(AdbContext {
            phone: phone.clone(),
            net: hooks,
        });
        let (plugged, rx) = watch::channel(true);
        let mut tasks = vec![tokio::spawn(cable(listener, adb_addr, ctx, rx))];
        tasks.extend(appnet::start(phone.clone(), net.clone()));
        if background {
            tasks.push(tokio::spawn(noise::run(net)));
        }
        Ok(PhoneSim {
            phone,
            adb_addr,
            plugged,
            tasks,
        })
    }

    /// Handles a control-socket command (`unplug`, `replug`, `status`).
    pub fn control(&self, line: &str) -> String {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("unplug"), None) => {
                self.unplug();
                "ok unplugged".into()
            }
            (Some("replug"), None) => {
                self.replug();
                "ok plugged".into()
            }
            (Some("unplug-for"), Some(ms)) => match ms.parse::<u64>() {
                Ok(ms) => {
                    self.unplug();
                    let tx = self.plugged.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        tx.send_replace(true);
                    });
                    format!("ok unplugged for {ms} ms")
                }
                Err(_) => "error: unplug-for MS".into(),
            },
            (Some("status"), None) => {
                let p = self.phone.lock().unwrap_or_else(|e| e.into_inner());
                let online: Vec<String> = p
                    .apps
                    .iter()
                    .map(|a| {
                        format!(
                            "{}={}",
                            a.def.id,
                            if a.online { "online" } else { "offline" }
                        )
                    })
                    .collect();
                format!(
                    "ok adb={} plugged={} notifications={} {}",
                    self.adb_addr,
                    self.is_plugged(),
                    p.notifications.len(),
                    online.join(" ")
                )
            }
            _ => "error: unknown command (unplug, replug, unplug-for MS, status)".into(),
        }
    }

    /// Arms a stall of the next `input text` command for `hold`; the
    /// receiver says whether the held command ran (`true`) or was dropped
    /// because the host closed its stream first (`false`).
    pub fn stall_next_input(&self, hold: Duration) -> tokio::sync::oneshot::Receiver<bool> {
        self.arm_stall("input text", hold, None)
    }

    /// Holds the next shell command containing `command` (as
    /// [`PhoneSim::stall_next_input`]) and also tells (first receiver) when
    /// it has arrived. The outcome's sender is dropped unanswered when the
    /// phone is unplugged during the hold.
    pub fn stall_next_command(
        &self,
        command: &str,
        hold: Duration,
    ) -> (
        tokio::sync::oneshot::Receiver<()>,
        tokio::sync::oneshot::Receiver<bool>,
    ) {
        let (begun, rx) = tokio::sync::oneshot::channel();
        (rx, self.arm_stall(command, hold, Some(begun)))
    }

    fn arm_stall(
        &self,
        command: &str,
        hold: Duration,
        begun: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> tokio::sync::oneshot::Receiver<bool> {
        let (outcome, rx) = tokio::sync::oneshot::channel();
        let mut p = self.phone.lock().unwrap_or_else(|e| e.into_inner());
        p.stall_input = Some(super::state::InputStall {
            command: command.to_string(),
            hold,
            outcome,
            begun,
        });
        rx
    }

    /// Adds a task to stop with the phone.
    pub fn attach(&mut self, task: tokio::task::JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Pulls the cable: the listener closes and ADB connections drop.
    pub fn unplug(&self) {
        self.plugged.send_replace(false);
    }

    /// Plugs the cable back in (the listener reopens on the same address).
    pub fn replug(&self) {
        self.plugged.send_replace(true);
    }

    /// Whether the cable is plugged in.
    pub fn is_plugged(&self) -> bool {
        *self.plugged.borrow()
    }
}

impl Drop for PhoneSim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The cable: serve while plugged, rebind after a replug.
async fn cable(
    first: TcpListener,
    addr: SocketAddr,
    ctx: Arc<AdbContext>,
    mut rx: watch::Receiver<bool>,
) {
    let mut listener = Some(first);
    loop {
        if let Some(l) = listener.take() {
            adbd::serve(l, ctx.clone(), rx.clone()).await;
        }
        // Unplugged: wait for the plug to come back.
        loop {
            if *rx.borrow_and_update() {
                break;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
        // Rebind (the old socket may linger briefly).
        for _ in 0..50 {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        if listener.is_none() {
            return;
        }
    }
}
