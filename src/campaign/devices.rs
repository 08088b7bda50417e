//! [`PhoneControl`] over real (or simulated) phones through the device
//! layer's one facade, [`crate::device::Phone`]: adb_client sessions opened
//! from the phone profiles, apps driven by the `ui:` section of their
//! profiles, clock offsets measured at preparation so every time lands on
//! the host clock.
//!
//! Receipts cannot be fooled by earlier copies of a text: before each send
//! the receiving phone's notifications and open chat are snapshotted, then
//! it goes to the home screen, so the app posts a notification whose posting
//! time (`mUpdateTimeMs`) dates the arrival to the millisecond; only a
//! notification or bubble that was not in the snapshot counts. Without a
//! notification within half the timeout, the chat is opened again and
//! polled (`uiautomator dump`, seconds apart).

use super::env::{EnvError, PhoneControl, PhoneFacts, Stamp};
use crate::device::api::{Phone, Watched};
use crate::device::events::text_sha256;
use crate::device::phone::ReceiptBaseline;
use crate::device::profile::{AppProfile, PhoneProfile};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Phones driven over ADB.
pub struct DevicePhones {
    rt: tokio::runtime::Handle,
    profiles: HashMap<String, PhoneProfile>,
    apps: Vec<AppProfile>,
    open: Mutex<HashMap<String, Arc<Phone>>>,
    /// The chat each phone opened: (app, peer).
    chats: Mutex<HashMap<String, (String, String)>>,
    /// Phones sent to the home screen (their chat must be opened again).
    away: Mutex<HashSet<String>>,
    /// Snapshots taken before a send: (receiving phone, text hash).
    pending: Mutex<HashMap<(String, String), ReceiptBaseline>>,
    /// (phone, app) whose app may not post notifications (the user denied
    /// them: `POST_NOTIFICATION` app op), read at each prepare: such a
    /// receiver keeps its chat open and its receipt is the new bubble.
    silent: Mutex<HashSet<(String, String)>>,
    /// Running screen recordings: their phone and the recorder's answer.
    recordings: Mutex<HashMap<String, Recording>>,
    /// Actions in flight per phone, to wait on when one is cancelled.
    busy: Arc<(Mutex<HashMap<String, usize>>, Condvar)>,
}

/// One action in flight on a phone (counted until dropped).
struct Busy {
    phone: String,
    busy: Arc<(Mutex<HashMap<String, usize>>, Condvar)>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let (m, cv) = &*self.busy;
        let mut map = m.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.phone) {
            *n = n.saturating_sub(1);
        }
        cv.notify_all();
    }
}

/// A phone an action may drive, with its session when open.
type Involved = (String, Option<Arc<Phone>>);

/// A screen recording running on its own thread (and ADB connection).
type Recording = (
    Arc<Phone>,
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
            apps,
            open: Mutex::new(HashMap::new()),
            chats: Mutex::new(HashMap::new()),
            away: Mutex::new(HashSet::new()),
            pending: Mutex::new(HashMap::new()),
            silent: Mutex::new(HashSet::new()),
            recordings: Mutex::new(HashMap::new()),
            busy: Arc::default(),
        }
    }

    /// Counts an action on `phone` until the guard is dropped.
    fn enter(&self, phone: &str) -> Busy {
        let (m, _) = &*self.busy;
        *m.lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(phone.to_string())
            .or_default() += 1;
        Busy {
            phone: phone.to_string(),
            busy: self.busy.clone(),
        }
    }

    /// Waits until no action is in flight on any of `phones`, at most `limit`.
    fn wait_idle(&self, phones: &[String], limit: Duration) -> Result<(), EnvError> {
        let (m, cv) = &*self.busy;
        let map = m.lock().unwrap_or_else(|e| e.into_inner());
        let (_map, r) = cv
            .wait_timeout_while(map, limit, |map| {
                phones.iter().any(|p| map.get(p).is_some_and(|n| *n > 0))
            })
            .unwrap_or_else(|e| e.into_inner());
        if r.timed_out() {
            return Err(EnvError::new(format!(
                "{}: the cancelled action did not end within {limit:?}",
                phones.join(", ")
            )));
        }
        Ok(())
    }

    /// The phones an action of `phone` may drive: itself and the peer of
    /// its open chat (a send snapshots the receiver and sends it home), with
    /// their sessions when open.
    fn involved(&self, phone: &str) -> Result<Vec<Involved>, EnvError> {
        let peer = self
            .chats
            .lock()
            .map_err(err)?
            .get(phone)
            .map(|c| c.1.clone());
        let open = self.open.lock().map_err(err)?;
        Ok(std::iter::once(phone.to_string())
            .chain(peer.filter(|q| q != phone))
            .map(|q| {
                let p = open.get(&q).cloned();
                (q, p)
            })
            .collect())
    }

    fn phone(&self, phone: &str) -> Result<Arc<Phone>, EnvError> {
        if let Some(d) = self.open.lock().map_err(err)?.get(phone) {
            return Ok(d.clone());
        }
        let p = self
            .profiles
            .get(phone)
            .ok_or_else(|| EnvError::new(format!("{phone}: no phone profile")))?;
        let d = Arc::new(
            self.rt
                .block_on(Phone::connect(p, &self.apps))
                .map_err(err)?,
        );
        self.open
            .lock()
            .map_err(err)?
            .insert(phone.to_string(), d.clone());
        Ok(d)
    }

    fn app(&self, app: &str) -> Result<&AppProfile, EnvError> {
        self.apps
            .iter()
            .find(|a| a.id == app)
            .ok_or_else(|| EnvError::new(format!("app {app}: no device profile")))
    }

    fn contact(&self, app: &str, peer: &str) -> Result<crate::device::api::Contact, EnvError> {
        let p = self
            .profiles
            .get(peer)
            .ok_or_else(|| EnvError::new(format!("{peer}: no phone profile")))?;
        crate::device::api::Contact::of(p, app).map_err(err)
    }

    /// Opens `phone`'s chat with `peer` in `app` (launching the app).
    fn open(&self, phone: &str, app: &str, peer: &str) -> Result<(), EnvError> {
        let d = self.phone(phone)?;
        let c = self.contact(app, peer)?;
        self.rt.block_on(async {
            d.launch(app).await.map_err(err)?;
            d.open_chat(app, &c).await.map_err(err)
        })?;
        self.away.lock().map_err(err)?.remove(phone);
        self.chats
            .lock()
            .map_err(err)?
            .insert(phone.to_string(), (app.to_string(), peer.to_string()));
        Ok(())
    }

    /// Records whether `phone`'s `app` may not post notifications.
    fn mark_silent(&self, phone: &str, app: &str, denied: bool) -> Result<(), EnvError> {
        let mut silent = self.silent.lock().map_err(err)?;
        let key = (phone.to_string(), app.to_string());
        if denied {
            silent.insert(key);
        } else {
            silent.remove(&key);
        }
        Ok(())
    }

    fn is_away(&self, phone: &str) -> bool {
        self.away.lock().is_ok_and(|a| a.contains(phone))
    }

    /// The peer whose chat `phone` has open in `app`.
    fn peer_of(&self, phone: &str, app: &str) -> Option<String> {
        let chats = self.chats.lock().ok()?;
        chats
            .get(phone)
            .filter(|(a, _)| a == app)
            .map(|(_, p)| p.clone())
    }
}

impl PhoneControl for DevicePhones {
    fn prepare(&self, phone: &str, app: &str, country: &str) -> Result<PhoneFacts, EnvError> {
        let _busy = self.enter(phone);
        let p = self.phone(phone)?;
        let a = self.app(app)?.clone();
        let rooted = self.profiles.get(phone).is_some_and(|p| p.rooted);
        let d = p.device();
        let facts = self.rt.block_on(async {
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
            let denied = d.notifications_denied(&a).await.map_err(err)?;
            self.mark_silent(phone, &a.id, denied)?;
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
            let clock = p.clock_offset(5).await.map_err(err)?;
            let info = d.info(&[]).await.map_err(err)?;
            Ok(PhoneFacts {
                model: info.model,
                android: info.android,
                app_version: Some(version),
                clock_offset_s: clock.offset_s,
                clock_uncertainty_s: clock.uncertainty_s,
            })
        })?;
        self.chats.lock().map_err(err)?.remove(phone);
        Ok(facts)
    }

    fn open_chat(&self, phone: &str, app: &str, peer: &str) -> Result<(), EnvError> {
        let _busy = self.enter(phone);
        self.open(phone, app, peer)
    }

    fn send(&self, phone: &str, app: &str, text: &str) -> Result<f64, EnvError> {
        self.send_stamped(phone, app, text).map(|s| s.t)
    }

    /// Opens the sender's chat again if it went home, snapshots the
    /// receiver and sends it home while the text is typed, then taps send.
    fn send_stamped(&self, phone: &str, app: &str, text: &str) -> Result<Stamp, EnvError> {
        let _busy = self.enter(phone);
        let d = self.phone(phone)?;
        let peer = self.peer_of(phone, app);
        // The receiver is driven too: a cancel waits for it as well.
        let _peer_busy = peer.as_deref().map(|q| self.enter(q));
        if self.is_away(phone)
            && let Some(peer) = &peer
        {
            self.open(phone, app, peer)?;
        }
        // The receiver: only a phone this facade drives, with its chat open.
        let receiver = peer
            .filter(|q| self.peer_of(q, app).as_deref() == Some(phone))
            .map(|q| self.phone(&q).map(|r| (q, r)))
            .transpose()?;
        let ui = receiver.as_ref().is_some_and(|(q, _)| !self.is_away(q));
        // A receiver whose app may not post notifications stays in its
        // chat: the bubble is its receipt (when its chat is open).
        let stay = receiver.as_ref().is_some_and(|(q, _)| {
            ui && self
                .silent
                .lock()
                .is_ok_and(|s| s.contains(&(q.clone(), app.to_string())))
        });
        let watched = receiver.as_ref().map(|(_, r)| Watched {
            phone: r.as_ref(),
            chat_open: ui,
            go_home: !stay,
        });
        let (sent, base) = self
            .rt
            .block_on(d.send_watched(app, text, watched))
            .map_err(err)?;
        if let (Some((q, _)), Some(b)) = (&receiver, base) {
            if !stay {
                self.away.lock().map_err(err)?.insert(q.clone());
            }
            self.pending
                .lock()
                .map_err(err)?
                .insert((q.clone(), text_sha256(text)), b);
        }
        Ok(Stamp {
            t: sent.ts.as_f64(),
            uncertainty: Some(sent.uncertainty),
        })
    }

    fn wait_receive(
        &self,
        phone: &str,
        app: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<f64, EnvError> {
        self.wait_receive_stamped(phone, app, text, timeout)
            .map(|s| s.t)
    }

    /// A new notification showing the text; without one within half the
    /// timeout, the chat opened again and polled for a new bubble.
    fn wait_receive_stamped(
        &self,
        phone: &str,
        app: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<Stamp, EnvError> {
        let _busy = self.enter(phone);
        let d = self.phone(phone)?;
        let base = self
            .pending
            .lock()
            .map_err(err)?
            .remove(&(phone.to_string(), text_sha256(text)))
            .unwrap_or_default();
        let away = self.is_away(phone);
        let peer = self.peer_of(phone, app);
        let contact = match &peer {
            Some(p) => self.contact(app, p)?,
            None => crate::device::api::Contact {
                name: String::new(),
                account: String::new(),
            },
        };
        let r = self
            .rt
            .block_on(d.receive_watched(
                app,
                text,
                timeout,
                &base,
                away && peer.is_some(),
                &contact,
            ))
            .map_err(err)?;
        if r.via == crate::device::phone::ReceiptVia::Ui {
            self.away.lock().map_err(err)?.remove(phone);
        }
        Ok(Stamp {
            t: r.ts.as_f64(),
            uncertainty: Some(r.uncertainty),
        })
    }

    fn finish(&self, phone: &str, app: &str) -> Result<(), EnvError> {
        let _busy = self.enter(phone);
        let p = self.phone(phone)?;
        let a = self.app(app)?.clone();
        let rooted = self.profiles.get(phone).is_some_and(|p| p.rooted);
        self.chats.lock().map_err(err)?.remove(phone);
        self.away.lock().map_err(err)?.remove(phone);
        self.rt.block_on(async {
            p.device().force_stop(&a).await.map_err(err)?;
            if rooted {
                p.device().firewall_clear().await.map_err(err)?;
            }
            Ok(())
        })
    }

    /// Closes the adb streams of the phone and of the peer its action may
    /// drive, makes their calls fail at once (also those waiting for an
    /// answer) until the action has ended (waited for, at most half of
    /// `limit`), then force-stops the app whose chat was open: text typed by
    /// the abandoned action may sit in the compose field, and the next
    /// attempt opens the chat anew. A phone that is gone (unplugged: not
    /// listed as `device`, adbd refusing) is not waited on nor force-stopped;
    /// the answer names it and why.
    fn cancel(&self, phone: &str, limit: Duration) -> Result<Option<String>, EnvError> {
        let involved = self.involved(phone)?;
        let adbs: Vec<&crate::device::adb::Adb> = involved
            .iter()
            .filter_map(|(_, p)| p.as_ref().map(|p| &p.device().adb))
            .collect();
        for a in &adbs {
            a.cancel();
        }
        let names: Vec<String> = involved.iter().map(|(q, _)| q.clone()).collect();
        let ended = self.wait_idle(&names, limit / 2);
        for a in &adbs {
            a.resume();
        }
        ended?;
        let mut gone = Vec::new();
        for (q, p) in &involved {
            if let Some(p) = p
                && let Err(why) = self.rt.block_on(p.device().adb.presence())
            {
                gone.push(format!("{q} is gone ({why})"));
            }
        }
        let chat = self.chats.lock().map_err(err)?.remove(phone);
        self.away.lock().map_err(err)?.remove(phone);
        let here = involved.first().and_then(|(_, p)| p.clone());
        if let (Some((app, _)), Some(p), true) = (chat, here, gone.is_empty()) {
            let a = self.app(&app)?.clone();
            self.rt.block_on(p.device().force_stop(&a)).map_err(err)?;
        }
        Ok((!gone.is_empty()).then(|| gone.join("; ")))
    }

    fn take_interruptions(&self, phone: &str) -> Vec<String> {
        self.phone(phone)
            .map(|p| p.device().take_interruptions())
            .unwrap_or_default()
    }

    fn diagnostics(&self, phone: &str, dir: &Path) -> Result<(), EnvError> {
        let _busy = self.enter(phone);
        let p = self.phone(phone)?;
        let (xml, _) = self.rt.block_on(p.device().dump()).map_err(err)?;
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
        let d = self.phone(phone)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (rt, dev, file) = (self.rt.clone(), d.clone(), file.to_path_buf());
        let secs = limit.as_secs().clamp(1, 180) as u32;
        std::thread::Builder::new()
            .name(format!("screenrecord-{phone}"))
            .spawn(move || {
                let r = rt
                    .block_on(dev.device().screenrecord(secs, &file))
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
            let _ = self.rt.block_on(d.device().sh("pkill -INT screenrecord"));
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
