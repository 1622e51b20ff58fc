#!/usr/bin/env bash
# bench-proxy.sh — `flotilla cache-proxy` against nutcracker (twemproxy), side by side, in one run.
#
# Two memcached servers (one thread each) are started on loopback; nutcracker (Debian's package,
# ketama placement, fnv1a_64) and `flotilla cache-proxy` both front the same two. The proxy runs
# with one event-loop thread, as nutcracker has one, and twice: with --replicas 1 (like for like:
# ketama placement, no replication) and with --replicas 2 --consistency quorum (what nutcracker does
# not do: every write goes to both servers). Each pair is measured with
# `flotilla bench --compare NUTCRACKER PROXY` (alternating rounds, 90 % get / 10 % set, 100-byte
# values, prefilled keys) at 32 and at 4 connections, and, like for like, with a pipelining client
# (4 connections, 8 requests in flight on each); medians and ratios proxy/nutcracker.
# With --write the section between <!-- bench-proxy:begin --> and <!-- bench-proxy:end --> of
# docs/benchmarks.md is replaced.
#
# Usage: scripts/bench-proxy.sh [--rounds 3] [--duration 5s] [--write]
# Environment: FLOTILLA_BIN (default: scripts/build-release.sh builds .build-release/release/flotilla),
# KEEP_LOGS=1
set -euo pipefail
# shellcheck source=lib/bench-peers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-peers.sh"
rounds=3
duration=5s
write=0

parse_options "rounds duration" "write" "$@"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ "$duration" =~ ^[1-9][0-9]*s$ ]] || die "--duration must look like 5s"

for tool in memcached nutcracker python3; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install memcached nutcracker)"
done

flotilla="$(bench_flotilla "$write")"
work="$(mktemp -d "${TMPDIR:-/tmp}/bench-proxy.XXXXXX")"
read -r mc1 mc2 nc ncstats p1 p2 < <(free_ports 6)
start_memcached "$mc1" "$mc2"
cat >"$work/nutcracker.yml" <<EOF
bench:
  listen: 127.0.0.1:${nc}
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: false
  redis: false
  servers:
   - 127.0.0.1:${mc1}:1
   - 127.0.0.1:${mc2}:1
EOF
nutcracker -c "$work/nutcracker.yml" -s "$ncstats" -a 127.0.0.1 -p "$work/nutcracker.pid" -o "$work/nutcracker.log" &
pids+=($!)
shards="127.0.0.1:${mc1},127.0.0.1:${mc2}"
proxy_common=(cache-proxy --threads 1 --shards "$shards" --admin 127.0.0.1:0 --log-format json)
"$flotilla" "${proxy_common[@]}" --listen "127.0.0.1:${p1}" --replicas 1 --distribution ketama 2>"$work/proxy1.log" &
pids+=($!)
"$flotilla" "${proxy_common[@]}" --listen "127.0.0.1:${p2}" --replicas 2 --consistency quorum 2>"$work/proxy2.log" &
pids+=($!)
sleep 1

results=()
# replicas:connections:pipeline; the last row is a pipelining client (8 requests in flight on
# each connection), whose replies the proxies batch.
for row in 1:32:1 1:4:1 2:32:1 2:4:1 1:4:8; do
    IFS=: read -r replicas conns pipeline <<<"$row"
    port_var="p${replicas}"
    out="$work/compare-r${replicas}-c${conns}-p${pipeline}.json"
    say "nutcracker vs cache-proxy --replicas ${replicas}, ${conns} connections, pipeline ${pipeline}, ${rounds} rounds of ${duration}"
    "$flotilla" bench --compare "memcache://127.0.0.1:${nc}" "memcache://127.0.0.1:${!port_var}" \
        --rounds "$rounds" --duration "$duration" --warmup 1s --connections "$conns" --pipeline "$pipeline" \
        --threads 1 --keys 10000 --json --quiet >"$out" || die "flotilla bench failed (see $out)"
    results+=("${replicas}:${conns}:${pipeline}:${out}")
done

export BP_RESULTS="${results[*]}"
versions="nutcracker $(nutcracker --version 2>&1 | head -n 1 | awk '{print $NF}'); $(memcached -V)"
table="$(python3 - <<'PY'
import json, os
rows = []
for item in os.environ["BP_RESULTS"].split():
    replicas, conns, pipeline, path = item.split(":", 3)
    data = json.load(open(path))
    a, b, r = data["a"]["median"], data["b"]["median"], data["ratio"]
    rows.append(f"| {replicas} | {conns} | {pipeline} | {a['throughput']:,.0f} | {b['throughput']:,.0f} "
                f"| **{r['throughput']:.2f}** | {a['p99']:,.0f} | {b['p99']:,.0f} | {r['p99']:.2f} |")
print("| proxy --replicas | connections | pipeline | nutcracker req/s | proxy req/s | proxy / nutcracker "
      "| nutcracker p99 (µs) | proxy p99 (µs) | p99 ratio |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
print("\n".join(rows))
PY
)"
printf '%s\n' "$table"

if ((write)); then
    write_doc_section bench-proxy <<EOF
Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores; ${versions}.

- Reproduce: \`scripts/bench-proxy.sh --rounds ${rounds} --duration ${duration} --write\`
- Each row: \`flotilla bench --compare memcache://NUTCRACKER memcache://PROXY --rounds ${rounds} --duration ${duration} --warmup 1s --connections N --pipeline P --threads 1 --keys 10000\` (90 % get / 10 % set, 100-byte values, keys prefilled); medians over the rounds. \`--pipeline 8\` keeps 8 requests in flight on each connection.
- Both proxies front the same two \`memcached -t 1\`; the proxy runs \`--threads 1\` like nutcracker's single thread, with \`--replicas 1 --distribution ketama\` (same placement as nutcracker) and with \`--replicas 2 --consistency quorum\` (each write on both servers, which nutcracker cannot do).

${table}
EOF
fi
