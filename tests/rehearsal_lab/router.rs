//! The router, configured only from the files `matador router config`
//! generated, applied as docs/real-lab.md step 5 says (hostapd aside: it
//! needs a radio). The files are used where they were generated
//! (`--install-dir` = that folder) instead of a copy in /etc/matador/router,
//! which this shared machine must not touch.

use super::{Guard, in_ns, run};
use std::path::{Path, PathBuf};

/// Applies `dir`'s files in namespace `router`; `tunnels` are the router's
/// WireGuard interface names (served by wireguard-go: their sockets are
/// machine-wide and removed by the guard). Returns dnsmasq's lease file.
pub fn apply(g: &mut Guard, router: &str, dir: &Path, tunnels: &[String]) -> PathBuf {
    for t in tunnels {
        g.wg_interface(t);
    }
    run(in_ns(router, "sysctl")
        .arg("-p")
        .arg(dir.join("sysctl.conf")));
    run(in_ns(router, "nft").arg("-f").arg(dir.join("router.nft")));
    run(in_ns(router, "sh").arg(dir.join("router-up.sh")));
    // dnsmasq in the foreground (-k) so the guard owns it; its lease file
    // (/var/lib/misc/matador.leases, as generated) is this run's folder
    // bind-mounted there in dnsmasq's own mount namespace, so runs never
    // share it and `router check --leases` can read it.
    let leases = g.dir.join("leases");
    std::fs::create_dir_all(&leases).unwrap();
    let script = format!(
        "set -e\nmkdir -p /var/lib/misc\nmount --bind {} /var/lib/misc\n\
         exec dnsmasq -k --log-facility=- --pid-file= -C {}\n",
        leases.display(),
        dir.join("dnsmasq.conf").display()
    );
    let argv = vec!["sh".to_string(), "-c".into(), script];
    g.spawn(router, &argv, "dnsmasq-router.log", "started");
    leases.join("matador.leases")
}
