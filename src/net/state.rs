//! Guaranteed teardown. Everything the network layer creates (namespaces,
//! processes, kernel objects outside a namespace, files) is appended to a
//! state file *before* it is created, written atomically (`.tmp` + rename).
//! Teardown undoes the list in reverse order and tolerates objects that are
//! already gone, so it can run from a Drop guard, after Ctrl-C, or on the
//! next start after a crash (a state whose owner process is dead and which
//! was not detached on purpose is stale and removed).

use super::NetError;
use super::cmd::Cmd;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Environment variable marking processes started through
/// [`StateFile::spawn`] (value: the [`Resource::Spawning`] tag).
pub const SPAWN_ENV: &str = "MATADOR_SPAWN";

/// Every process: its pid and its /proc directory.
fn all_processes() -> impl Iterator<Item = (u32, PathBuf)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, e.path()))
        })
}

/// Live processes whose environment carries `MATADOR_SPAWN=<tag>` for one
/// of `tags`, with their start times.
fn marked_processes(tags: &[&str]) -> Vec<(u32, u64, String)> {
    let mut v = Vec::new();
    let wanted: Vec<Vec<u8>> = tags
        .iter()
        .map(|t| format!("{SPAWN_ENV}={t}").into_bytes())
        .collect();
    for (pid, dir) in all_processes() {
        let Ok(env) = std::fs::read(dir.join("environ")) else {
            continue;
        };
        for (w, t) in wanted.iter().zip(tags) {
            if env.split(|b| *b == 0).any(|kv| kv == w.as_slice())
                && let Some(start) = process_start(pid)
            {
                v.push((pid, start, t.to_string()));
            }
        }
    }
    v
}

/// Live processes (other than this one) whose network namespace is one of
/// the named ones (under /run/netns), with their start times: whatever still
/// runs inside a namespace we created is ours — e.g. an sshd session child
/// that outlived its killed listener (sshd overwrites its environment with
/// its process title, so the spawn marker cannot find it).
fn processes_in_namespaces(names: &[&str]) -> Vec<(u32, u64, String)> {
    use std::os::unix::fs::MetadataExt;
    let inodes: Vec<(u64, &str)> = names
        .iter()
        .filter_map(|n| {
            let m = std::fs::metadata(Path::new("/run/netns").join(n)).ok()?;
            Some((m.ino(), *n))
        })
        .collect();
    let mut v = Vec::new();
    if inodes.is_empty() {
        return v;
    }
    let me = std::process::id();
    for (pid, dir) in all_processes().filter(|(pid, _)| *pid != me) {
        // The link reads `net:[<inode>]`.
        let Ok(link) = std::fs::read_link(dir.join("ns/net")) else {
            continue;
        };
        let Some(ino) = link
            .to_str()
            .and_then(|l| l.strip_prefix("net:["))
            .and_then(|l| l.strip_suffix(']'))
            .and_then(|l| l.parse::<u64>().ok())
        else {
            continue;
        };
        if let Some((_, name)) = inodes.iter().find(|(i, _)| *i == ino)
            && let Some(start) = process_start(pid)
        {
            v.push((pid, start, name.to_string()));
        }
    }
    v
}

/// Schema tag of state files.
pub const SCHEMA: &str = "matador/net-state/1";

/// One created object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// A named network namespace (deleting it removes its links and routes).
    Netns {
        /// Name under /run/netns.
        name: String,
    },
    /// A process started by us, identified by pid and start time (so a
    /// recycled pid is never killed).
    Process {
        /// Process id.
        pid: u32,
        /// Start time in clock ticks since boot (/proc/PID/stat field 22).
        start: u64,
        /// What it is (for messages).
        name: String,
    },
    /// A process about to be started, recorded *before* the spawn: the child
    /// (and whatever it starts) carries `MATADOR_SPAWN=<tag>` in its
    /// environment, so teardown finds it by that marker when the owner died
    /// between the spawn and recording its [`Resource::Process`].
    Spawning {
        /// Unique marker (`<state id>:<index>`).
        tag: String,
        /// What it is (for messages).
        name: String,
    },
    /// A command that undoes something created outside a namespace (an
    /// `ip rule`, a route, an iptables rule, a link in the root namespace).
    Undo {
        /// The undo command (argv).
        argv: Vec<String>,
    },
    /// A file or directory to remove.
    Path {
        /// Path.
        path: PathBuf,
    },
}

/// The life-cycle phase recorded in the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Being built; stale if the owner died.
    Building,
    /// Up and owned by a running process; stale if the owner died.
    Owned,
    /// Up and left running on purpose (`lab up` without `--foreground`).
    Detached,
}

/// The process that owns a state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Start time (clock ticks since boot).
    pub start: u64,
}

/// A state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Unique id of the lab or tunnel set.
    pub id: String,
    /// Phase.
    pub phase: Phase,
    /// Owner process.
    pub owner: Owner,
    /// Free-form data of the user of the state (e.g. the lab description path).
    #[serde(default)]
    pub info: serde_json::Value,
    /// Created objects, in creation order.
    pub resources: Vec<Resource>,
}

/// Start time of a process (clock ticks since boot), `None` if it is gone.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after ')'; start time is field 22.
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return None;
    }
    f.get(19)?.parse().ok()
}

/// Whether the process `pid` started at `start` still runs.
pub fn alive(pid: u32, start: u64) -> bool {
    process_start(pid) == Some(start)
}

/// This process as an owner.
pub fn me() -> Owner {
    let pid = std::process::id();
    Owner {
        pid,
        start: process_start(pid).unwrap_or(0),
    }
}

#[allow(unsafe_code)]
fn signal(pid: u32, sig: i32) {
    let Ok(p) = i32::try_from(pid) else { return };
    if p <= 1 {
        return;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // the pid was checked against its recorded start time just before.
    unsafe {
        libc::kill(p, sig);
    }
}

/// Stops a process we started: SIGTERM, then SIGKILL after `grace`.
/// Does nothing when the pid now belongs to another process.
pub fn stop_process(pid: u32, start: u64, grace: Duration) {
    if !alive(pid, start) {
        return;
    }
    signal(pid, libc::SIGTERM);
    let t = Instant::now();
    while t.elapsed() < grace {
        if !alive(pid, start) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if alive(pid, start) {
        signal(pid, libc::SIGKILL);
        let t = Instant::now();
        while alive(pid, start) && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A state file being written while objects are created.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: State,
}

impl StateFile {
    /// Creates a new state file (phase Building, owned by this process).
    pub fn create(path: &Path, id: &str, info: serde_json::Value) -> Result<StateFile, NetError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| NetError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let s = StateFile {
            path: path.to_path_buf(),
            state: State {
                schema: SCHEMA.into(),
                id: id.into(),
                phase: Phase::Building,
                owner: me(),
                info,
                resources: Vec::new(),
            },
        };
        s.save()?;
        Ok(s)
    }

    /// Reads a state file.
    pub fn load(path: &Path) -> Result<StateFile, NetError> {
        let text = std::fs::read_to_string(path).map_err(|source| NetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let state: State = serde_json::from_str(&text).map_err(|e| NetError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if state.schema != SCHEMA {
            return Err(NetError::State {
                path: path.to_path_buf(),
                message: format!("schema {:?}, expected {SCHEMA:?}", state.schema),
            });
        }
        Ok(StateFile {
            path: path.to_path_buf(),
            state,
        })
    }

    /// The content.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn save(&self) -> Result<(), NetError> {
        let io = |source| NetError::Io {
            path: self.path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(&self.state).map_err(|e| NetError::State {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        crate::atomic_file::write(&self.path, text.as_bytes()).map_err(io)
    }

    /// Records a resource (call before creating it).
    pub fn add(&mut self, r: Resource) -> Result<(), NetError> {
        if !self.state.resources.contains(&r) {
            self.state.resources.push(r);
        }
        self.save()
    }

    /// Sets the phase (and takes ownership for this process).
    pub fn set_phase(&mut self, phase: Phase) -> Result<(), NetError> {
        self.state.phase = phase;
        self.state.owner = me();
        self.save()
    }

    /// Replaces the free-form info.
    pub fn set_info(&mut self, info: serde_json::Value) -> Result<(), NetError> {
        self.state.info = info;
        self.save()
    }

    /// Starts a long-running process (detached into its own process group,
    /// standard input closed, output appended to `log`), records it, and
    /// reaps it in a background thread when it exits. Returns its pid.
    pub fn spawn(&mut self, cmd: &Cmd, name: &str, log: &Path) -> Result<u32, NetError> {
        use std::os::unix::process::CommandExt;
        let io = |source| NetError::Io {
            path: log.to_path_buf(),
            source,
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(io)?;
        let err = out.try_clone().map_err(io)?;
        let tag = format!("{}:{}", self.state.id, self.state.resources.len());
        self.add(Resource::Spawning {
            tag: tag.clone(),
            name: name.to_string(),
        })?;
        let mut c = cmd.command();
        c.env(SPAWN_ENV, &tag)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let mut child = c.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                NetError::Missing {
                    program: cmd.argv()[0].clone(),
                    hint: super::cmd::install_hint(&cmd.argv()[0]),
                }
            } else {
                NetError::Spawn {
                    command: cmd.display(),
                    source,
                }
            }
        })?;
        let pid = child.id();
        let start = process_start(pid).unwrap_or(0);
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        self.add(Resource::Process {
            pid,
            start,
            name: name.to_string(),
        })?;
        Ok(pid)
    }

    /// Whether the state is stale: not detached and its owner is dead.
    pub fn is_stale(&self) -> bool {
        self.state.phase != Phase::Detached && !alive(self.state.owner.pid, self.state.owner.start)
    }

    /// Undoes everything (reverse order), then removes the state file.
    /// Returns the problems met (objects that could not be removed).
    pub fn teardown(self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut res = self.state.resources.clone();
        // A spawn not followed by its process record: the owner died in
        // between; find the process by its environment marker.
        let unconfirmed: Vec<&str> = res
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Resource::Spawning { tag, name } => {
                    let confirmed = res[i + 1..]
                        .iter()
                        .any(|x| matches!(x, Resource::Process { name: n, .. } if n == name));
                    (!confirmed).then_some(tag.as_str())
                }
                _ => None,
            })
            .collect();
        let found = if unconfirmed.is_empty() {
            Vec::new()
        } else {
            marked_processes(&unconfirmed)
        };
        res.extend(
            found
                .into_iter()
                .map(|(pid, start, tag)| Resource::Process {
                    pid,
                    start,
                    name: format!("unrecorded process {tag}"),
                }),
        );
        // Anything else still running inside our namespaces.
        let namespaces: Vec<&str> = res
            .iter()
            .filter_map(|r| match r {
                Resource::Netns { name } => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let inside: Vec<Resource> = processes_in_namespaces(&namespaces)
            .into_iter()
            .filter(|(pid, _, _)| {
                !res.iter()
                    .any(|r| matches!(r, Resource::Process { pid: p, .. } if p == pid))
            })
            .map(|(pid, start, ns)| Resource::Process {
                pid,
                start,
                name: format!("process left in namespace {ns}"),
            })
            .collect();
        res.extend(inside);
        // Processes first (they hold sockets in the namespaces), all at once.
        for r in res.iter().rev() {
            if let Resource::Process { pid, start, .. } = r
                && alive(*pid, *start)
            {
                signal(*pid, libc::SIGTERM);
            }
        }
        for r in res.iter().rev() {
            if let Resource::Process { pid, start, name } = r {
                stop_process(*pid, *start, Duration::from_millis(1500));
                if alive(*pid, *start) {
                    problems.push(format!("process {name} (pid {pid}) survived SIGKILL"));
                }
            }
        }
        for r in res.iter().rev() {
            match r {
                Resource::Process { .. } | Resource::Spawning { .. } => {}
                Resource::Undo { argv } => {
                    if let Some((p, a)) = argv.split_first() {
                        let _ = Cmd::new(p.clone()).args(a.iter().cloned()).succeeds();
                    }
                }
                Resource::Netns { name } => {
                    if Path::new("/run/netns").join(name).exists()
                        && let Err(e) = Cmd::new("ip").args(["netns", "delete", name]).run()
                    {
                        problems.push(e.to_string());
                    }
                }
                Resource::Path { path } => {
                    let r = if path.is_dir() {
                        std::fs::remove_dir_all(path)
                    } else {
                        std::fs::remove_file(path)
                    };
                    if let Err(e) = r
                        && e.kind() != std::io::ErrorKind::NotFound
                    {
                        problems.push(format!("{}: {e}", path.display()));
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&self.path);
        problems
    }
}

/// Removes every stale state in `dir` (files `*.json`); returns the ids removed.
pub fn sweep_stale(dir: &Path) -> Vec<String> {
    let mut done = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return done;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        if let Ok(s) = StateFile::load(&p)
            && s.is_stale()
        {
            let id = s.state.id.clone();
            let _ = s.teardown();
            done.push(id);
        }
    }
    done
}

/// A guard that tears a state down when dropped (unless disarmed).
#[derive(Debug)]
pub struct Guard {
    state: Option<StateFile>,
}

impl Guard {
    /// Guards `state`.
    pub fn new(state: StateFile) -> Guard {
        Guard { state: Some(state) }
    }

    /// The guarded state.
    pub fn state_mut(&mut self) -> &mut StateFile {
        // Only `None` after disarm/teardown, which consume the guard.
        self.state
            .as_mut()
            .expect("guard holds a state until consumed")
    }

    /// The guarded state (read-only).
    pub fn state(&self) -> &StateFile {
        self.state
            .as_ref()
            .expect("guard holds a state until consumed")
    }

    /// Keeps everything running: the state stays on disk.
    pub fn disarm(mut self) -> StateFile {
        self.state
            .take()
            .expect("guard holds a state until consumed")
    }

    /// Tears down now, returning the problems met.
    pub fn teardown(mut self) -> Vec<String> {
        self.state
            .take()
            .map(StateFile::teardown)
            .unwrap_or_default()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(s) = self.state.take() {
            let _ = s.teardown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_known() {
        let me = me();
        assert!(me.start > 0);
        assert!(alive(me.pid, me.start));
        assert!(!alive(me.pid, me.start + 1));
    }

    #[test]
    fn teardown_kills_processes_and_removes_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.txt");
        std::fs::write(&f, "x").unwrap();
        let mut st =
            StateFile::create(&dir.path().join("s.json"), "t1", serde_json::json!({})).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        st.add(Resource::Process {
            pid,
            start: process_start(pid).unwrap(),
            name: "sleep".into(),
        })
        .unwrap();
        st.add(Resource::Path { path: f.clone() }).unwrap();
        let loaded = StateFile::load(&dir.path().join("s.json")).unwrap();
        assert!(!loaded.is_stale());
        let problems = Guard::new(loaded).teardown();
        assert!(problems.is_empty(), "{problems:?}");
        let _ = child.wait();
        assert!(!f.exists());
        assert!(!dir.path().join("s.json").exists());
    }

    #[test]
    fn a_process_spawned_but_not_yet_recorded_is_found_by_its_marker() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let mut st = StateFile::create(&p, "t3", serde_json::json!({})).unwrap();
        let pid = st
            .spawn(
                &Cmd::new("sleep").arg("30"),
                "sleeper",
                &dir.path().join("sleep.log"),
            )
            .unwrap();
        let start = process_start(pid).unwrap();
        // The crash window: the owner died after the spawn, before the
        // process record was written.
        st.state
            .resources
            .retain(|r| !matches!(r, Resource::Process { .. }));
        st.save().unwrap();
        assert!(matches!(
            StateFile::load(&p).unwrap().state().resources[..],
            [Resource::Spawning { .. }]
        ));
        let problems = StateFile::load(&p).unwrap().teardown();
        assert!(problems.is_empty(), "{problems:?}");
        let t = Instant::now();
        while alive(pid, start) && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(pid, start), "unrecorded sleeper {pid} survived");
    }

    /// Needs root (a network namespace), as the lab tests do.
    #[test]
    fn a_process_left_inside_our_namespace_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let ns = format!("mtd-st-{}", std::process::id());
        let mut st = StateFile::create(&p, "t4", serde_json::json!({})).unwrap();
        st.add(Resource::Netns { name: ns.clone() }).unwrap();
        let guard = Guard::new(st);
        Cmd::new("ip")
            .args(["netns", "add", ns.as_str()])
            .run()
            .expect("creating a network namespace (needs root)");
        // Unrecorded and unmarked (empty environment), like an sshd session
        // child whose listener was killed.
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", ns.as_str(), "sleep", "30"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .spawn()
            .unwrap();
        let pid = child.id();
        let t = Instant::now();
        while processes_in_namespaces(&[ns.as_str()]).is_empty()
            && t.elapsed() < Duration::from_secs(3)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            processes_in_namespaces(&[ns.as_str()])
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>(),
            vec![pid]
        );
        let problems = guard.teardown();
        assert!(problems.is_empty(), "{problems:?}");
        let status = child.wait().unwrap();
        assert!(!status.success(), "the sleeper was killed: {status:?}");
        assert!(!Path::new("/run/netns").join(&ns).exists());
    }

    #[test]
    fn dead_owner_is_stale_unless_detached() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let mut st = StateFile::create(&p, "t2", serde_json::json!({})).unwrap();
        st.state.owner.start += 1; // a different process with our pid
        st.save().unwrap();
        assert!(StateFile::load(&p).unwrap().is_stale());
        st.state.phase = Phase::Detached;
        st.save().unwrap();
        assert!(!StateFile::load(&p).unwrap().is_stale());
        st.state.phase = Phase::Building;
        st.save().unwrap();
        assert_eq!(sweep_stale(dir.path()), vec!["t2".to_string()]);
        assert!(!p.exists());
    }
}
