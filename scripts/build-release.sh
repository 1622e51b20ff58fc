#!/usr/bin/env bash
# build-release.sh — the release build of `flotilla` that is deployed and benchmarked.
#
# `swift build -c release` with Swift's run-time exclusivity checks off in every module, SwiftNIO
# and the other dependencies included (`-Xswiftc -enforce-exclusivity=unchecked`; the
# compile-time checks remain). Swift server deployments are commonly built this way (the
# Hummingbird and Vapor entries of the TechEmpower benchmarks are, for instance). On the proxy's
# request path the checks were about a fifth of the instructions (valgrind's callgrind, 4
# connections). A plain `swift build -c release` (or `swift run -c release`) already drops them
# in the package's own hot modules (see Package.swift); SwiftPM accepts the flag for the
# dependencies only on the command line, hence this script.
#
# The Swift runtime and Foundation are linked in (`--static-swift-stdlib`): the binary runs on a
# machine or in a container image without the Swift toolchain's libraries (it needs libc,
# libstdc++, libm and zlib), and runtime calls such as swift_retain are direct calls.
#
# Usage: scripts/build-release.sh
# Prints the binary's path on standard output; the build's own output goes to standard error.
# The build lives in .build-release/ (its own folder: the flag changes every module's build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="${repo}/.build-release"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
(($# == 0)) || { printf 'build-release: error: no arguments expected (see --help)\n' >&2; exit 2; }
swift build -c release --product flotilla --scratch-path "$scratch" --static-swift-stdlib \
    -Xswiftc -enforce-exclusivity=unchecked >&2
printf '%s\n' "${scratch}/release/flotilla"
