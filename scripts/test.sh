#!/usr/bin/env bash
# The whole test suite: lints, unit and integration tests (including the
# virtual-lab tests, which need root and network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --no-fail-fast 2>&1 | tee target/test.log
