#!/usr/bin/env bash
# The whole test suite: lints, unit and integration tests (including the
# virtual-lab tests, which need root and network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh test --no-geo
# The Debian root that tests/reallab_node.rs uses as a clean remote node takes
# minutes of debootstrap (network-bound): build it while the code compiles.
# The test takes the same lock, so it waits for this instead of racing it.
node_cache=${MATADOR_NODE_CACHE:-/var/cache/matador}
mkdir -p "$node_cache" target
. /etc/os-release
flock "$node_cache/.lock" sh tests/reallab_node/build-root.sh "$node_cache" "$VERSION_CODENAME" \
    >target/node-root.log 2>&1 &
# One debug build, shared by the geolocation import and the test suite.
cargo build --locked --bin matador
MATADOR_BIN=target/debug/matador bash scripts/install-geo.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# cargo-nextest runs the test binaries side by side, the lab tests one at a
# time (.config/nextest.toml); --workspace: the unit tests of every crate
# (matador, matador-lab, the binary, bench/measgen) and the integration
# tests. The libraries have no doc tests but they are run so that a new one
# is not missed.
status=0
cargo nextest run --workspace --locked --no-fail-fast 2>&1 | tee target/test.log || status=1
cargo test --workspace --locked --doc 2>&1 | tee -a target/test.log || status=1
exit $status
