//! Shards on a real batch scheduler (issue 24, docs/slurm.md): a
//! single-node Slurm (Debian's slurmctld + slurmd, munge for
//! authentication) started by this test with its own configuration, ports,
//! state and spool folders and munge key and socket in a temporary folder,
//! runs a 2-task job array of `matador run --lab --shard
//! $SLURM_ARRAY_TASK_ID/2`; `matador merge` joins the two shard folders and
//! the merged campaign's report is compared with an unsharded run's.
//!
//! Needs root (the virtual lab; slurmd runs the tasks as root) and the
//! packages `slurmctld slurmd slurm-client munge` (scripts/install-deps.sh
//! test): a missing one FAILS with a message, never skips. The daemons are
//! stopped by pid (their children of this test), whatever happens.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MATADOR: &str = env!("CARGO_BIN_EXE_matador");

/// One app over two country pairs (DE–DE and DE–BR, so the locality
/// tables have an area holding both vantages), a baseline and one message
/// exchange each, traceroutes on: 4 measurements, 2 per shard under the
/// shard rule (one group of country pair and app each).
const SCENARIO: &str = r#"
name: slurm-shards
phones:
  - id: lab-a
  - id: lab-b
apps: [whatsapp]
countries:
  DE: [de-1]
  BR: [br-1]
pairs:
  explicit: [[DE, DE], [DE, BR]]
messages:
  per_direction: 1
  texts: ["Hello from the lab", "Somewhere in a network namespace"]
  interval: 1s
baseline:
  runs: 1
  duration: 10s
timeouts:
  step: 30s
  receive: 20s
  measurement: 2m
retries: 1
capture:
  points: [router]
  screenrecord: false
steps:
  paths: true
  probes: false
geo:
  groups: current
lab:
  noise: false
"#;

/// A daemon this test started; killed (SIGTERM, then SIGKILL) by its pid.
struct Daemon {
    name: &'static str,
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{} (pid {pid}) ignored SIGTERM: killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The program's path, or a failure naming the package to install.
fn need(program: &str, package: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{program} not found: this test needs a real Slurm and munge; install them with \
         `bash scripts/install-deps.sh test` (Debian packages {package})"
    );
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Daemon {
    let out = std::fs::File::create(log).expect("daemon log");
    let err = out.try_clone().expect("daemon log");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Daemon { name, child }
}

fn wait_for(what: &str, timeout: Duration, logs: &[&Path], mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        if t.elapsed() > timeout {
            let text: Vec<String> = logs
                .iter()
                .map(|l| {
                    format!(
                        "--- {}:\n{}",
                        l.display(),
                        std::fs::read_to_string(l).unwrap_or_default()
                    )
                })
                .collect();
            panic!("{what} within {timeout:?}\n{}", text.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A private single-node Slurm: munged, slurmctld and slurmd, in `dir`.
struct Slurm {
    conf: PathBuf,
    // Dropped in reverse order: slurmd, slurmctld, then munged.
    _daemons: Vec<Daemon>,
}

impl Slurm {
    fn start(dir: &Path) -> Slurm {
        let munged = need("munged", "munge");
        let slurmctld = need("slurmctld", "slurmctld");
        let slurmd = need("slurmd", "slurmd");
        need("sbatch", "slurm-client");
        need("sinfo", "slurm-client");
        use std::os::unix::fs::PermissionsExt;
        let m = dir.join("munge");
        std::fs::create_dir_all(&m).expect("munge dir");
        let mut key = vec![0u8; 1024];
        std::io::Read::read_exact(
            &mut std::fs::File::open("/dev/urandom").expect("urandom"),
            &mut key,
        )
        .expect("random key");
        let key_file = m.join("munge.key");
        std::fs::write(&key_file, &key).expect("munge key");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o400))
            .expect("chmod key");
        let socket = m.join("munge.socket");
        let mut daemons = Vec::new();
        let mlog = dir.join("munged.log");
        daemons.push(spawn(
            "munged",
            Command::new(munged)
                .args(["--foreground", "--force"])
                .arg(format!("--key-file={}", key_file.display()))
                .arg(format!("--socket={}", socket.display()))
                .arg(format!("--pid-file={}", m.join("munged.pid").display()))
                .arg(format!("--seed-file={}", m.join("munged.seed").display()))
                .arg(format!(
                    "--log-file={}",
                    m.join("munged.file.log").display()
                )),
            &mlog,
        ));
        wait_for("munged's socket", Duration::from_secs(10), &[&mlog], || {
            socket.exists()
        });
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .expect("hostname")
            .trim()
            .to_string();
        for d in ["state", "spool"] {
            std::fs::create_dir_all(dir.join(d)).expect("slurm dirs");
        }
        let d = dir.display();
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=matadortest\n\
                 SlurmctldHost={host}(127.0.0.1)\n\
                 SlurmctldPort={ctld}\n\
                 SlurmdPort={slurmd_port}\n\
                 SlurmUser=root\n\
                 SlurmdUser=root\n\
                 StateSaveLocation={d}/state\n\
                 SlurmdSpoolDir={d}/spool\n\
                 SlurmctldPidFile={d}/slurmctld.pid\n\
                 SlurmdPidFile={d}/slurmd.pid\n\
                 SlurmctldLogFile={d}/slurmctld.log\n\
                 SlurmdLogFile={d}/slurmd.log\n\
                 AuthType=auth/munge\n\
                 AuthInfo=socket={socket}\n\
                 CredType=cred/munge\n\
                 ProctrackType=proctrack/linuxproc\n\
                 TaskPlugin=task/none\n\
                 JobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\n\
                 JobCompType=jobcomp/none\n\
                 SchedulerType=sched/builtin\n\
                 SelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_Core\n\
                 MpiDefault=none\n\
                 ReturnToService=2\n\
                 NodeName={host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
                 PartitionName=matador Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                ctld = free_port(),
                slurmd_port = free_port(),
                socket = socket.display(),
            ),
        )
        .expect("slurm.conf");
        let clog = dir.join("slurmctld.out");
        daemons.push(spawn(
            "slurmctld",
            Command::new(slurmctld)
                .args(["-D", "-i", "-f"])
                .arg(&conf)
                .env("SLURM_CONF", &conf),
            &clog,
        ));
        let dlog = dir.join("slurmd.out");
        daemons.push(spawn(
            "slurmd",
            Command::new(slurmd)
                .args(["-D", "-f"])
                .arg(&conf)
                .env("SLURM_CONF", &conf),
            &dlog,
        ));
        let slurm = Slurm {
            conf,
            _daemons: daemons,
        };
        let logs = [
            clog.as_path(),
            dlog.as_path(),
            &dir.join("slurmctld.log"),
            &dir.join("slurmd.log"),
        ];
        wait_for(
            "the Slurm node idle",
            Duration::from_secs(30),
            &logs,
            || {
                slurm
                    .cmd("sinfo")
                    .args(["-h", "-o", "%T"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
            },
        );
        slurm
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        // The daemons (Vec) drop in order: munged first would leave slurmd
        // unable to talk; reverse it.
        while let Some(d) = self._daemons.pop() {
            drop(d);
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn matador(args: &[&str]) -> std::process::Output {
    Command::new(MATADOR)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run matador")
}

fn only_dir(parent: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(parent)
        .unwrap_or_else(|e| panic!("{}: {e}", parent.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// `matador report --format json` of a campaign folder.
fn report_json(dir: &Path) -> Value {
    let out = matador(&["report", "--format", "json", &dir.display().to_string()]);
    assert!(
        out.status.success(),
        "matador report {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report JSON")
}

#[test]
fn a_slurm_job_array_of_shards_merges_into_the_unsharded_campaign() {
    assert!(
        is_root(),
        "this test needs root (the virtual lab; slurmd runs the array's tasks as root)"
    );
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("slurm-shards.yaml");
    std::fs::write(&scenario, SCENARIO).expect("scenario");
    let slurm = Slurm::start(&tmp.path().join("slurm"));
    let started = t0.elapsed();

    // The recipe of docs/slurm.md: one task per shard.
    let shards = tmp.path().join("shards");
    let job = tmp.path().join("shards.sbatch");
    std::fs::write(
        &job,
        format!(
            "#!/bin/sh\n#SBATCH --array=0-1\n#SBATCH --job-name=matador-shards\n\
             echo \"task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT, job $SLURM_ARRAY_JOB_ID\"\n\
             exec {MATADOR} run --lab --shard \"$SLURM_ARRAY_TASK_ID/2\" --out {} {}\n",
            shards.display(),
            scenario.display()
        ),
    )
    .expect("job script");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");
    let sbatch = slurm
        .cmd("sbatch")
        .args(["--parsable", "--wait"])
        .arg(format!("--chdir={}", env!("CARGO_MANIFEST_DIR")))
        .arg(format!("--output={}/task-%a.out", logs.display()))
        .arg(&job)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sbatch");
    // The unsharded run of the same scenario, meanwhile (the lab waits on
    // simulated phones, not on the CPU).
    let whole_out = tmp.path().join("whole");
    let whole = matador(&[
        "run",
        "--lab",
        "--out",
        &whole_out.display().to_string(),
        &scenario.display().to_string(),
    ]);
    let job_out = sbatch.wait_with_output().expect("sbatch --wait");
    let task_logs: Vec<String> = (0..2)
        .map(|k| std::fs::read_to_string(logs.join(format!("task-{k}.out"))).unwrap_or_default())
        .collect();
    assert!(
        job_out.status.success(),
        "the job array failed ({:?}): {}\n{}\ntask 0:\n{}\ntask 1:\n{}",
        job_out.status,
        String::from_utf8_lossy(&job_out.stdout),
        String::from_utf8_lossy(&job_out.stderr),
        task_logs[0],
        task_logs[1]
    );
    let ran = t0.elapsed();
    drop(slurm);
    assert!(
        whole.status.success(),
        "unsharded run: {}\n{}",
        String::from_utf8_lossy(&whole.stdout),
        String::from_utf8_lossy(&whole.stderr)
    );
    // Slurm ran each task with its own SLURM_ARRAY_TASK_ID.
    for (k, log) in task_logs.iter().enumerate() {
        assert!(log.contains(&format!("task {k} of 2")), "task {k}: {log}");
    }
    let dirs = only_dir(&shards);
    assert_eq!(dirs.len(), 2, "two shard folders: {dirs:?}");
    let mut ks = Vec::new();
    for d in &dirs {
        let plan: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("plan.json")).expect("plan"))
                .expect("plan.json");
        assert_eq!(plan["shard"]["n"], 2, "{}", d.display());
        assert_eq!(plan["shard"]["plan_measurements"], 4);
        assert_eq!(plan["measurements"].as_array().map(Vec::len), Some(2));
        ks.push(plan["shard"]["k"].as_u64().expect("k"));
    }
    ks.sort();
    assert_eq!(ks, vec![0, 1]);

    // An incomplete set is refused, naming the missing shard.
    let merged = tmp.path().join("merged");
    let m = merged.display().to_string();
    let one = matador(&["merge", &m, &dirs[0].display().to_string()]);
    assert!(!one.status.success());
    let e = String::from_utf8_lossy(&one.stderr);
    assert!(e.contains("missing") && e.contains("of 2"), "{e}");
    let out = matador(&[
        "merge",
        &m,
        &dirs[0].display().to_string(),
        &dirs[1].display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "merge: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(merged.join("dataset").is_dir(), "the merged dataset");
    let mj: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("merge.json")).expect("m"))
            .expect("merge.json");
    assert_eq!(mj["complete"], true);

    let whole_dir = only_dir(&whole_out).pop().expect("unsharded campaign");
    let (a, b) = (report_json(&whole_dir), report_json(&merged));
    let (ca, cb) = (comparable(&a), comparable(&b));
    let mut diffs = Vec::new();
    differences(&ca, &cb, "", &mut diffs);
    assert!(
        diffs.is_empty(),
        "the merged report differs from the unsharded one (unsharded | merged):\n{}",
        diffs.join("\n")
    );
    // Not vacuous: the compared report holds the tables.
    assert!(
        ca["table2"].as_array().is_some_and(|t| !t.is_empty()),
        "{ca}"
    );
    assert!(
        ca["servers"].as_array().is_some_and(|t| !t.is_empty()),
        "{ca}"
    );
    assert!(
        ca["paths"].as_array().is_some_and(|t| !t.is_empty()),
        "{ca}"
    );
    eprintln!(
        "slurm up in {:.1} s; array + unsharded run {:.1} s; total {:.1} s",
        started.as_secs_f64(),
        (ran - started).as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// The report without timestamps and timings, which differ between any
/// two runs of the same plan, sharded or not (two unsharded runs were
/// compared to find them, docs/dev-notes/issue-24-shards.md): the
/// campaign's folder name (its start time), the lab database's build time,
/// round-trip times (`rtt` of every hop, the RTT table, the anomaly texts
/// and hop lists quoting them) and the servers' evidence strings (chances
/// and background counts from the timing of packets around the events);
/// and without what depends on how long the lab has been up (below).
/// Everything else — measurement counts and statuses, Tables 2 and 3, the
/// apps' DNS names and addresses, their servers with role, score,
/// countries and AS, paths hop by hop, anomaly kinds, interference,
/// failures — must be equal.
fn comparable(r: &Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                for k in ["rtt", "evidence", "description"] {
                    o.remove(k);
                }
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut r = r.clone();
    // Anomalies quote each hop with its RTT ("3 198.18.136.9 DE 0.2ms").
    for a in r["anomalies"].as_array_mut().into_iter().flatten() {
        if let Some(o) = a.as_object_mut() {
            o.remove("hops");
        }
    }
    if let Some(c) = r.get_mut("campaign").and_then(Value::as_object_mut) {
        for k in ["name", "geo_db", "asn_db", "dns_noise_names"] {
            c.remove(k);
        }
    }
    // Lab history: the simulated phones run all seven apps, whose
    // background reconnects follow the time since the lab came up; an
    // unsharded run's later measurements see them, a shard's fresh lab
    // does not. So only the campaign's own servers and names (a role, a
    // relevant name) are compared, and not in how many measurements each
    // was seen.
    for (table, keep) in [("servers", "role"), ("dns", "relevant")] {
        if let Some(rows) = r[table].as_array_mut() {
            rows.retain(|row| !row[keep].is_null() && row[keep] != Value::Bool(false));
            for row in rows.iter_mut().filter_map(Value::as_object_mut) {
                row.remove("measurements");
            }
        }
    }
    strip(&mut r);
    r
}

/// Paths where two JSON values differ, with both sides (at most 40).
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    if out.len() >= 40 || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                differences(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{at}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{at}[{i}]"), out);
            }
        }
        _ => out.push(format!("{at}: {a} | {b}")),
    }
}
