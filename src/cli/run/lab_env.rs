//! `matador run --lab`: brings the virtual lab up through its public entry
//! point ([`matador_lab::build::Lab::up`], the code of `matador lab up`) and
//! builds the campaign's world from its `lab.json` only: phones over ADB at
//! `phones[].adb`, nodes over SSH (the node agent: captures, paths, probes)
//! at `nodes[].ssh`, routes through `net/` on the router namespace.

use anyhow::Context;
use matador::campaign::runner::Env;
use matador::net::labdesc::LabDesc;
use matador::scenario::LoadedScenario;
use matador_lab::build::{Lab, UpOptions};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Brings up the lab the scenario's `lab:` section describes (and returns
/// its topology)
/// ([`super::lab_topology::topology_for`]; torn down when the returned
/// [`Lab`] is dropped or [`Lab::down`] is called). `cancel` aborts the
/// bring-up (Ctrl-C).
/// A resumed campaign (`resume`: its folder) uses the topology recorded in
/// its `lab-topology.yaml`, so it continues in the same lab. `state_dir`:
/// where the lab keeps its state.
pub fn up(
    ls: &LoadedScenario,
    resume: Option<&Path>,
    state_dir: &Path,
    cancel: Arc<AtomicBool>,
) -> anyhow::Result<(Lab, matador_lab::topology::Topology)> {
    let (topology, path) = match resume.map(|d| d.join(super::LAB_TOPOLOGY)) {
        Some(p) if p.is_file() => {
            let mut t = matador_lab::topology::Topology::load(&p)?;
            // The record keeps no phone numbers: the phones' accounts come
            // back from where the first run took them (lab base, profiles).
            let (fresh, _) = super::lab_topology::topology_for(ls)?;
            for ph in &mut t.phones {
                if let Some(f) = fresh.phones.iter().find(|f| f.name == ph.name) {
                    ph.accounts = f.accounts.clone();
                }
            }
            (t, p)
        }
        _ => super::lab_topology::topology_for(ls)?,
    };
    let lab = Lab::up(UpOptions {
        topology: topology.clone(),
        state_dir: state_dir.to_path_buf(),
        exe: std::env::current_exe().context("own executable")?,
        phones: true,
        ssh: true,
        cancel: Some(cancel),
    })
    .with_context(|| format!("lab up ({})", path.display()))?;
    Ok((lab, topology))
}

/// The campaign's world from a lab description, built by the campaign's
/// one builder ([`matador::campaign::world`], the same as a real lab's).
pub fn env(
    ls: &LoadedScenario,
    desc: &LabDesc,
    lab_dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<(Env, super::Agents)> {
    // The campaign's routing state lives in the lab folder: it goes with the lab.
    let state = matador::net::state::StateFile::create(
        &lab_dir.join(format!("campaign-{}.json", std::process::id())),
        &ls.scenario.name,
        serde_json::json!({"scenario": ls.scenario.name, "lab": desc.id}),
    )?;
    let world = matador::campaign::world::World::from_lab(ls, desc, lab_dir, state)?;
    Ok(world.build(ls, rt.handle())?)
}
