#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with the Swift toolchain: installs what the
# tests need (memcached, libmemcached-tools, nutcracker, etcd, pymemcache), checks the format, builds, then runs
# the Swift tests (unit and integration, which start real memcached and flotilla processes)
# and the Python tests that drive flotilla with real clients.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-test-deps.sh
scripts/format-check.sh
swift build --build-tests
export FLOTILLA_BIN="${FLOTILLA_BIN:-$PWD/.build/debug/flotilla}"
# Two runs: the integration tests block the threads of Swift's shared concurrency pool while they
# wait on sockets and processes (one per core), which would stall the timers of the tests that
# measure handovers and watch the demo's children. Those run second, on a pool of their own.
timed='FlotillaElectionTests\.|FlotillaIntegrationTests\.DemoTests'
swift test --skip-build --skip "${timed}"
swift test --skip-build --filter "${timed}"
.build-venv/bin/python -m pytest -q Tests/python
