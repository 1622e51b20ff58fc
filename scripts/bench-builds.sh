#!/usr/bin/env bash
# bench-builds.sh — two builds of flotilla side by side, in one run: did a change cost throughput?
#
# Starts, from each build, a `flotilla cache-proxy` (--replicas 1 --distribution ketama, one thread)
# in front of the same two `memcached -t 1`, and a `flotilla cache` (one thread); then measures
# each pair with `flotilla bench --compare BEFORE AFTER` (alternating rounds, 90 % get / 10 % set,
# 100-byte values, 10,000 keys prefilled) at 32 and at 4 connections, and prints the medians and the
# ratios after/before. The figures belong in docs/benchmarks.md with this command.
#
# Usage: scripts/bench-builds.sh BEFORE_BIN AFTER_BIN [--rounds 5] [--duration 5s]
#   e.g. git worktree add /tmp/before COMMIT && (cd /tmp/before && scripts/build-release.sh)
#        scripts/bench-builds.sh /tmp/before/.build-release/release/flotilla "$(scripts/build-release.sh)"
set -euo pipefail
# shellcheck source=lib/bench-peers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-peers.sh"

rounds=5
duration=5s

positional=()
while (($# > 0)); do
    case "$1" in
        --rounds) rounds="${2:?}"; shift 2 ;;
        --duration) duration="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown argument: $1 (see --help)" ;;
        *) positional+=("$1"); shift ;;
    esac
done
((${#positional[@]} == 2)) || die "give the two binaries, BEFORE_BIN AFTER_BIN (see --help)"
before="${positional[0]}"
after="${positional[1]}"
[[ -x "$before" && -x "$after" ]] || die "both binaries must be executable: $before $after"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ "$duration" =~ ^[1-9][0-9]*s$ ]] || die "--duration must look like 5s"
command -v memcached >/dev/null || die "memcached not found (apt-get install memcached)"

read -r mc1 mc2 proxy1 proxy2 cache1 cache2 < <(free_ports 6)
start_memcached "$mc1" "$mc2"
common=(--threads 1 --admin 127.0.0.1:0 --log-level error)
proxy=(cache-proxy --shards "127.0.0.1:${mc1},127.0.0.1:${mc2}" --replicas 1 --distribution ketama)
"$before" "${proxy[@]}" "${common[@]}" --listen "127.0.0.1:${proxy1}" & pids+=($!)
"$after" "${proxy[@]}" "${common[@]}" --listen "127.0.0.1:${proxy2}" & pids+=($!)
"$before" cache --memory 256MiB "${common[@]}" --listen "127.0.0.1:${cache1}" & pids+=($!)
"$after" cache --memory 256MiB "${common[@]}" --listen "127.0.0.1:${cache2}" & pids+=($!)
sleep 1

for pair in "proxy:${proxy1}:${proxy2}" "cache:${cache1}:${cache2}"; do
    IFS=: read -r role a b <<<"$pair"
    for connections in 32 4; do
        printf '== %s, %s connections: A = %s, B = %s\n' "$role" "$connections" "$before" "$after"
        "$after" bench --compare "memcache://127.0.0.1:${a}" "memcache://127.0.0.1:${b}" --rounds "$rounds" \
            --duration "$duration" --warmup 1s --connections "$connections" --threads 1 --keys 10000 --quiet \
            | grep -v '^round'
    done
done
