//! [`PhoneControl`] over real (or simulated) phones through `device/`:
//! adb_client sessions opened from the phone profiles, apps driven by the
//! `ui:` section of their profiles, receipt by notifications, clock offsets
//! measured at preparation so every event lands on the host clock.

use super::env::{EnvError, PhoneControl, PhoneFacts};
use crate::device::clock::ClockEstimate;
use crate::device::phone::Device;
use crate::device::profile::{AppProfile, PhoneProfile};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Phones driven over ADB.
pub struct DevicePhones {
    rt: tokio::runtime::Handle,
    profiles: HashMap<String, PhoneProfile>,
    apps: HashMap<String, AppProfile>,
    open: Mutex<HashMap<String, Arc<Device>>>,
    clocks: Mutex<HashMap<String, ClockEstimate>>,
    /// Running screen recordings: their device and the recorder's answer.
    recordings: Mutex<HashMap<String, Recording>>,
}

/// A screen recording running on its own thread (and ADB connection).
type Recording = (
    Arc<Device>,
    std::sync::mpsc::Receiver<Result<(), String>>,
    Duration,
);

impl std::fmt::Debug for DevicePhones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevicePhones")
            .field("phones", &self.profiles.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How long `prepare` waits for a phone that does not answer to come back.
pub const PHONE_RETURN: Duration = Duration::from_secs(8);

fn err(e: impl std::fmt::Display) -> EnvError {
    EnvError::new(e.to_string())
}

/// The reference point (lat, lon) of a country (capital or largest city,
/// from the geo module's table), for the mock location.
pub fn country_point(iso2: &str) -> Option<(f64, f64)> {
    crate::geo::plausibility::POINTS_CSV.lines().find_map(|l| {
        let mut f = l.split(',');
        (f.next()? == iso2).then_some(())?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

impl DevicePhones {
    /// Phones from their profiles and the device layer's app profiles;
    /// calls run on `rt`.
    pub fn new(
        rt: tokio::runtime::Handle,
        phones: Vec<PhoneProfile>,
        apps: Vec<AppProfile>,
    ) -> DevicePhones {
        DevicePhones {
            rt,
            profiles: phones.into_iter().map(|p| (p.id.clone(), p)).collect(),
            apps: apps.into_iter().map(|a| (a.id.clone(), a)).collect(),
            open: Mutex::new(HashMap::new()),
            clocks: Mutex::new(HashMap::new()),
            recordings: Mutex::new(HashMap::new()),
        }
    }

    fn device(&self, phone: &str) -> Result<Arc<Device>, EnvError> {
        if let Some(d) = self.open.lock().map_err(err)?.get(phone) {
            return Ok(d.clone());
        }
        let p = self
            .profiles
            .get(phone)
            .ok_or_else(|| EnvError::new(format!("{phone}: no phone profile")))?;
        let d = Arc::new(self.rt.block_on(Device::from_profile(p)).map_err(err)?);
        self.open
            .lock()
            .map_err(err)?
            .insert(phone.to_string(), d.clone());
        Ok(d)
    }

    fn app(&self, app: &str) -> Result<&AppProfile, EnvError> {
        self.apps
            .get(app)
            .ok_or_else(|| EnvError::new(format!("app {app}: no device profile")))
    }

    fn to_host(&self, phone: &str, phone_s: f64) -> Option<f64> {
        self.clocks
            .lock()
            .ok()?
            .get(phone)
            .map(|c| c.to_host(phone_s))
    }
}

impl PhoneControl for DevicePhones {
    fn prepare(&self, phone: &str, app: &str, country: &str) -> Result<PhoneFacts, EnvError> {
        let d = self.device(phone)?;
        let a = self.app(app)?.clone();
        let rooted = self.profiles.get(phone).is_some_and(|p| p.rooted);
        self.rt.block_on(async {
            // A phone that dropped off (cable, USB reset, adbd restart) often
            // comes back within seconds: wait for it before failing the
            // attempt (the device layer reconnects on the next call).
            let until = tokio::time::Instant::now() + PHONE_RETURN;
            loop {
                match d.wake_unlock().await {
                    Ok(_) => break,
                    Err(e) if tokio::time::Instant::now() >= until => return Err(err(e)),
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            let version = d.require_app(&a).await.map_err(err)?;
            // Every attempt starts from a stopped app: after a failover the
            // phone's route moves to another node, and a connection opened
            // through the previous node is dead behind its NAT without
            // either end knowing; the backend would relay messages into it.
            d.force_stop(&a).await.map_err(err)?;
            if let Some((lat, lon)) = country_point(country) {
                d.mock_location(lat, lon).await.map_err(err)?;
            }
            if rooted {
                let uid = d.app_uid(&a.package).await.map_err(err)?;
                d.firewall_allow_only(&[uid]).await.map_err(err)?;
            }
            let clock = d.clock(5).await.map_err(err)?;
            let info = d.info(&[]).await.map_err(err)?;
            if let Ok(mut c) = self.clocks.lock() {
                c.insert(phone.to_string(), clock);
            }
            Ok(PhoneFacts {
                model: info.model,
                android: info.android,
                app_version: Some(version),
                clock_offset_s: clock.offset_s,
                clock_uncertainty_s: clock.uncertainty_s,
            })
        })
    }

    fn open_chat(&self, phone: &str, app: &str, peer: &str) -> Result<(), EnvError> {
        let d = self.device(phone)?;
        let a = self.app(app)?;
        let p = self
            .profiles
            .get(peer)
            .ok_or_else(|| EnvError::new(format!("{peer}: no phone profile")))?;
        let account = p
            .accounts
            .get(app)
            .ok_or_else(|| EnvError::new(format!("{peer}: no {app} account in its profile")))?;
        let name = p.display_name.clone().unwrap_or_else(|| peer.to_string());
        self.rt.block_on(async {
            d.launch(a).await.map_err(err)?;
            d.open_chat(a, account, &name, None).await.map_err(err)
        })
    }

    fn send(&self, phone: &str, app: &str, text: &str) -> Result<f64, EnvError> {
        let d = self.device(phone)?;
        let a = self.app(app)?;
        self.rt.block_on(async {
            d.type_text(a, text, None).await.map_err(err)?;
            let s = d.tap_send(a, None).await.map_err(err)?;
            Ok(s.host_before_s)
        })
    }

    fn wait_receive(
        &self,
        phone: &str,
        app: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<f64, EnvError> {
        let d = self.device(phone)?;
        let a = self.app(app)?;
        let r = self
            .rt
            .block_on(d.wait_receipt(a, text, timeout, None))
            .map_err(err)?;
        // The notification's posting time on the phone's clock is closer to
        // the arrival than the poll that saw it.
        Ok(r.phone_posted_s
            .and_then(|p| self.to_host(phone, p))
            .unwrap_or(r.host_seen_s))
    }

    fn finish(&self, phone: &str, app: &str) -> Result<(), EnvError> {
        let d = self.device(phone)?;
        let a = self.app(app)?.clone();
        let rooted = self.profiles.get(phone).is_some_and(|p| p.rooted);
        self.rt.block_on(async {
            d.force_stop(&a).await.map_err(err)?;
            if rooted {
                d.firewall_clear().await.map_err(err)?;
            }
            Ok(())
        })
    }

    fn diagnostics(&self, phone: &str, dir: &Path) -> Result<(), EnvError> {
        let d = self.device(phone)?;
        let (xml, _) = self.rt.block_on(d.dump()).map_err(err)?;
        crate::atomic_file::write(&dir.join(format!("ui-{phone}.xml")), xml.as_bytes()).map_err(err)
    }

    fn start_screenrecord(
        &self,
        phone: &str,
        limit: Duration,
        file: &Path,
    ) -> Result<(), EnvError> {
        // A recording left over (a stop that timed out) is ended first.
        self.stop_screenrecord(phone)?;
        let d = self.device(phone)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (rt, dev, file) = (self.rt.clone(), d.clone(), file.to_path_buf());
        let secs = limit.as_secs().clamp(1, 180) as u32;
        std::thread::Builder::new()
            .name(format!("screenrecord-{phone}"))
            .spawn(move || {
                let r = rt
                    .block_on(dev.screenrecord(secs, &file))
                    .map_err(|e| e.to_string());
                let _ = tx.send(r);
            })
            .map_err(err)?;
        self.recordings
            .lock()
            .map_err(err)?
            .insert(phone.to_string(), (d, rx, limit));
        Ok(())
    }

    fn stop_screenrecord(&self, phone: &str) -> Result<(), EnvError> {
        let Some((d, rx, limit)) = self.recordings.lock().map_err(err)?.remove(phone) else {
            return Ok(());
        };
        // SIGINT ends screenrecord cleanly (it finishes the file), as a
        // Ctrl-C in `adb shell screenrecord` does; then the file is pulled.
        // Repeated until the recorder answers: a recording that had not
        // started yet when the first signal went out is ended too.
        let bound = limit + Duration::from_secs(60);
        let deadline = std::time::Instant::now() + bound;
        loop {
            let _ = self.rt.block_on(d.sh("pkill -INT screenrecord"));
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(r) => {
                    return r.map_err(|e| EnvError::new(format!("{phone}: screenrecord: {e}")));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    if std::time::Instant::now() < deadline => {}
                Err(_) => {
                    return Err(EnvError::new(format!(
                        "{phone}: screenrecord did not end within {bound:?}"
                    )));
                }
            }
        }
    }
}
