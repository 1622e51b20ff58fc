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
swift test --skip-build
.build-venv/bin/python -m pytest -q Tests/python
