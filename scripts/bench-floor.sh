#!/usr/bin/env bash
# bench-floor.sh — what a request costs memcached, SwiftNIO alone, and `flotilla cache`.
#
# Runs three memcached text-protocol servers, one thread each, one at a time under valgrind's
# callgrind, and counts the instructions each spends per request under the same load:
#   memcached   Debian's memcached -t 1
#   nio-floor   Benchmarks/NIOFloor: a SwiftNIO server that parses each line in place, answers
#               every get with a fixed 100-byte hit and stores no set: what SwiftNIO's channel
#               pipeline costs per request, the floor under any SwiftNIO memcached server
#   flotilla    flotilla cache --threads 1
# Load: `flotilla bench --no-prefill --keys 10000 --connections CONNS --threads 1` for DURATION
# (90 % get / 10 % set, 32-byte keys, 100-byte values, keys set once before), counted between
# `callgrind_control -z` and `-d`. Instruction counts are repeatable whatever else the machine
# does, where wall-clock figures on a shared machine are not; they count user space only (all
# three make the same system calls per request: one read and one write).
#
# The wall-clock comparison of the floor with memcached is bench-cache.sh with the floor in
# flotilla's place:
#   BENCH_B_CMD="$PWD/.build-floor/release/nio-floor {PORT}" scripts/bench-cache.sh --threads 1
#
# Usage:
#   scripts/bench-floor.sh [--conns 32] [--duration 5s]
# Environment:
#   FLOTILLA_BIN   the flotilla binary (default <repo>/.build-release/release/flotilla, brought up
#                  to date with `scripts/build-release.sh` unless NO_BUILD is set; NO_BUILD also
#                  skips building nio-floor)
#   KEEP_LOGS=1    keep the work directory (callgrind profiles, bench reports) and print its path
set -euo pipefail
# shellcheck source=lib/bench-peers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-peers.sh"

conns=32
duration=5s
parse_options "conns duration" "" "$@"
duration_s="$(seconds_of "$duration")"
[[ "$conns" =~ ^[1-9][0-9]*$ ]] || die "--conns must be a positive integer"
for tool in memcached valgrind callgrind_control cc python3; do
    command -v "$tool" >/dev/null || die "$tool not found (memcached: scripts/install-test-deps.sh; valgrind: Debian's valgrind)"
done

flotilla="$(bench_flotilla 0)"
floor_scratch="${repo}/.build-floor"
if [[ -z "${NO_BUILD:-}" ]]; then
    say "building nio-floor: swift build -c release --package-path Benchmarks/NIOFloor"
    swift build -c release --package-path "${repo}/Benchmarks/NIOFloor" --scratch-path "$floor_scratch" \
        -Xswiftc -enforce-exclusivity=unchecked >&2
fi
floor="${floor_scratch}/release/nio-floor"
[[ -x "$floor" ]] || die "nio-floor not built: $floor"

work="$(mktemp -d "${TMPDIR:-/tmp}/bench-floor.XXXXXX")"
# valgrind 3.19 cannot emulate sigsuspend(2), which Swift's runtime calls: a stand-in made of
# sigprocmask and pause. It also reads DWARF 5 debug information badly: stripped copies.
cat >"$work/sigsuspend.c" <<'C'
#define _GNU_SOURCE
#include <signal.h>
#include <unistd.h>
int sigsuspend(const sigset_t *mask) {
    sigset_t old;
    sigprocmask(SIG_SETMASK, mask, &old);
    int r = pause();
    sigprocmask(SIG_SETMASK, &old, 0);
    return r;
}
C
cc -shared -fPIC -o "$work/sigsuspend.so" "$work/sigsuspend.c"
cp "$flotilla" "$work/flotilla" && strip --strip-debug "$work/flotilla"
cp "$floor" "$work/nio-floor" && strip --strip-debug "$work/nio-floor"

# memcached sets its descriptor limit to -c; under valgrind only valgrind's own hard limit (the
# real one less 12) is accepted.
valgrind_fds=$(($(ulimit -Hn) - 12))
# memcached refuses to run as root without -u; as another user callgrind_control could not reach it.
user_args=()
[[ "$(id -u)" -ne 0 ]] || user_args=(-u root)

# measure NAME PORT COMMAND...: prints "INSTRUCTIONS REQUESTS".
measure() {
    local name="$1" port="$2" pid dump
    shift 2
    LD_PRELOAD="$work/sigsuspend.so" valgrind --tool=callgrind --callgrind-out-file="$work/$name.cg" \
        "$@" >"$work/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_ready "$port" "$pid" "$name" 'version\r\n' 8 '^VERSION'
    "$flotilla" bench "memcache://127.0.0.1:$port" --duration 2s --warmup 0s --connections 4 --threads 1 \
        --keys 10000 --quiet >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    "$flotilla" bench "memcache://127.0.0.1:$port" --no-prefill --keys 10000 --duration "${duration_s}s" \
        --warmup 0s --connections "$conns" --threads 1 --quiet --json >"$work/$name.json"
    callgrind_control -d "$pid" >/dev/null 2>&1
    dump="$work/$name.cg.1"
    for _ in $(seq 1 50); do [[ -s "$dump" ]] && grep -q '^summary:' "$dump" && break; sleep 0.2; done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    printf '%s %s\n' "$(awk '/^summary:/ { print $2; exit }' "$dump")" \
        "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["requests"])' "$work/$name.json")"
}

read -r port_a port_b port_c < <(free_ports 3)
say "memcached under callgrind (${duration_s}s, ${conns} connections)"
read -r ir_a req_a < <(measure memcached "$port_a" memcached "${user_args[@]}" -c "$valgrind_fds" -t 1 -m 64 -U 0 \
    -l 127.0.0.1 -p "$port_a")
say "nio-floor under callgrind"
read -r ir_b req_b < <(measure nio-floor "$port_b" "$work/nio-floor" "$port_b")
say "flotilla cache under callgrind"
read -r ir_c req_c < <(measure flotilla "$port_c" "$work/flotilla" cache --threads 1 --memory 64MiB \
    --listen "127.0.0.1:$port_c" --admin 127.0.0.1:0 --log-format json)

printf '\ninstructions per request, user space, %s connections, %ss of flotilla bench 90/10 100 B (callgrind):\n' \
    "$conns" "$duration_s"
printf '  %-10s %14s %10s %12s %12s\n' server instructions requests per-request /memcached
for row in "memcached $ir_a $req_a" "nio-floor $ir_b $req_b" "flotilla $ir_c $req_c"; do
    read -r name ir req <<<"$row"
    printf '  %-10s %14d %10d %12d %12.2f\n' "$name" "$ir" "$req" $((ir / req)) \
        "$(awk -v a=$((ir / req)) -v b=$((ir_a / req_a)) 'BEGIN { print a / b }')"
done
printf 'reproduce: scripts/bench-floor.sh --conns %s --duration %s\n' "$conns" "$duration"
