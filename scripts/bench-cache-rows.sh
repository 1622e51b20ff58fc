#!/usr/bin/env bash
# bench-cache-rows.sh — `flotilla cache` against memcached on issue 15's workloads, in one run.
#
# For each thread count T (1 and 2), memcached -t T and `flotilla cache --threads T` run side by
# side (256 MiB each) and `flotilla bench --compare MEMCACHED FLOTILLA` measures them on each
# workload, alternating rounds (32 connections, 2 client threads, 32-byte keys):
#   hits          90 % get / 10 % set, 100-byte values, 10,000 keys set before, uniform
#   zipf          the same, keys drawn zipf:0.99
#   4 KB          the same with 4,096-byte values
#   misses        no keys set before, 1,000,000 keys: almost every get misses
#   multiget 16   16 keys per get
# Medians over the rounds and ratios flotilla/memcached. (memcaslap's figure is bench-cache.sh.)
# With --write the section between <!-- bench-cache-rows:begin --> and <!-- bench-cache-rows:end -->
# of docs/benchmarks.md is replaced.
#
# Usage: scripts/bench-cache-rows.sh [--rounds 3] [--duration 5s] [--threads "1 2"] [--write]
# Environment: FLOTILLA_BIN (default: scripts/build-release.sh builds .build-release/release/flotilla),
# NO_BUILD=1, KEEP_LOGS=1
set -euo pipefail
# shellcheck source=lib/bench-peers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-peers.sh"
rounds=3
duration=5s
threads="1 2"
write=0

parse_options "rounds duration threads" "write" "$@"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ "$duration" =~ ^[1-9][0-9]*s$ ]] || die "--duration must look like 5s"
[[ "$threads" =~ ^[1-9]( [1-9])*$ ]] || die "--threads must be thread counts from 1 to 9, e.g. \"1 2\""
for tool in memcached python3; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-test-deps.sh installs it)"
done

flotilla="$(bench_flotilla "$write")"
work="$(mktemp -d "${TMPDIR:-/tmp}/bench-cache-rows.XXXXXX")"
user_args=()
[[ "$(id -u)" -ne 0 ]] || user_args=(-u nobody)

# name|flotilla bench arguments
workloads=(
    "hits|--keys 10000"
    "zipf|--keys 10000 --distribution zipf:0.99"
    "4 KB|--keys 10000 --value-size 4096"
    "misses|--keys 1000000 --no-prefill"
    "multiget 16|--keys 10000 --multiget 16"
)

results=()
for t in $threads; do
    read -r mc fl < <(free_ports 2)
    memcached "${user_args[@]}" -t "$t" -m 256 -U 0 -l 127.0.0.1 -p "$mc" >"$work/memcached-$t.log" 2>&1 &
    pids+=($!)
    mc_pid=$!
    "$flotilla" cache --threads "$t" --memory 256MiB --listen "127.0.0.1:$fl" --admin 127.0.0.1:0 \
        --log-format json >"$work/flotilla-$t.log" 2>&1 &
    pids+=($!)
    fl_pid=$!
    wait_ready "$mc" "$mc_pid" memcached 'version\r\n' 8 '^VERSION'
    wait_ready "$fl" "$fl_pid" flotilla 'version\r\n' 8 '^VERSION'
    for i in "${!workloads[@]}"; do
        IFS='|' read -r name args <<<"${workloads[$i]}"
        out="$work/t${t}-w${i}.json"
        say "threads ${t}: ${name}, ${rounds} rounds of ${duration}"
        # shellcheck disable=SC2086 # args holds several options
        "$flotilla" bench --compare "memcache://127.0.0.1:$mc" "memcache://127.0.0.1:$fl" \
            --rounds "$rounds" --duration "$duration" --warmup 1s --connections 32 --threads 2 \
            $args --json --quiet >"$out" || die "flotilla bench failed (see $out)"
        results+=("${t}|${name}|${args}|${out}")
    done
    kill -TERM "$mc_pid" "$fl_pid" 2>/dev/null || true
    wait "$mc_pid" "$fl_pid" 2>/dev/null || true
done

results_file="$work/results"
printf '%s\n' "${results[@]}" >"$results_file"
table="$(python3 - "$results_file" <<'PY'
import json, sys
print("| threads | workload | `flotilla bench` arguments | memcached req/s | flotilla req/s | flotilla / memcached "
      "| memcached p99 (µs) | flotilla p99 (µs) | p99 ratio |")
print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for line in open(sys.argv[1]).read().splitlines():
    threads, name, args, path = line.split("|", 3)
    data = json.load(open(path))
    a, b, r = data["a"]["median"], data["b"]["median"], data["ratio"]
    print(f"| {threads} | {name} | `{args}` | {a['throughput']:,.0f} | {b['throughput']:,.0f} "
          f"| **{r['throughput']:.2f}** | {a['p99']:,.0f} | {b['p99']:,.0f} | {r['p99']:.2f} |")
PY
)"
printf '%s\n' "$table"

if ((write)); then
    write_doc_section bench-cache-rows <<EOF
Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores; $(memcached -V); flotilla $("$flotilla" --version 2>/dev/null | head -n 1).

- Reproduce: \`scripts/bench-cache-rows.sh --rounds ${rounds} --duration ${duration} --threads "${threads}" --write\`
- Each row: \`flotilla bench --compare memcache://MEMCACHED memcache://FLOTILLA --rounds ${rounds} --duration ${duration} --warmup 1s --connections 32 --threads 2 ARGUMENTS\` (90 % get / 10 % set, 32-byte keys); medians over the rounds; both servers with the row's thread count and 256 MiB.

${table}
EOF
fi
