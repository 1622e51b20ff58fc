#!/usr/bin/env bash
# bench-cache.sh — `flotilla cache` against memcached, side by side, in one run.
#
# Both servers run at once on 127.0.0.1 with the same thread count and memory; memcaslap
# (Debian's libmemcached-tools) drives one at a time, alternating A B A B ... for ROUNDS rounds,
# after one untimed warm-up trial each. Workload: 90 % get / 10 % set, 32-byte keys,
# 100-byte values, CONNS connections, a fixed DURATION per trial.
#
# Per trial it records:
#   throughput  ops/s from memcaslap's closing "Run time: ... TPS: N" line
#   p99         memcaslap prints no percentile, only a log2 histogram of per-operation latency
#               ("Total Statistics ... Log2 Dist", bucket i holds latencies in (2^(i-1), 2^i] µs);
#               p99 here is the upper bound 2^i of the bucket holding the 99th percentile, so it
#               is coarse (powers of two) and an upper bound
#   mean        memcaslap's exact mean latency (µs), for a finer comparison than the p99 bucket
#   RSS         VmRSS of the server process from /proc/PID/status at the end of the trial
# then prints medians per server and the ratios flotilla/memcached. With --write it replaces the
# section between <!-- bench-cache:begin --> and <!-- bench-cache:end --> of docs/benchmarks.md.
#
# Usage:
#   scripts/bench-cache.sh [--rounds 3] [--duration 10s] [--threads 2] [--conns 32]
#                          [--client-threads 2] [--warmup 3s] [--write]
# Environment:
#   FLOTILLA_BIN   the flotilla binary (default <repo>/.build-release/release/flotilla, brought up to date with
#                  `scripts/build-release.sh` unless NO_BUILD is set)
#   BENCH_B_CMD    replaces the flotilla side with another command, for validating this script
#                  (e.g. a second memcached); {PORT} in it is replaced by the port it must serve.
#                  --write is refused then: such figures never go into docs/benchmarks.md.
#   KEEP_LOGS=1    keep the work directory (memcaslap outputs, server logs) and print its path
set -euo pipefail
# shellcheck source=lib/bench-peers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-peers.sh"

rounds=3
duration=10s
threads=2
conns=32
client_threads=2
warmup=3s
write=0

parse_options "rounds duration threads conns client-threads warmup" "write" "$@"

duration_s="$(seconds_of "$duration")"
warmup_s=0
[[ "$warmup" == 0 || "$warmup" == 0s ]] || warmup_s="$(seconds_of "$warmup")"
for n in rounds threads conns client_threads; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "--${n//_/-} must be a positive integer"
done
((rounds <= 50)) || die "--rounds at most 50"
((duration_s <= 600)) || die "--duration at most 10m"
((conns % client_threads == 0)) || die "--conns must be a multiple of --client-threads"

command -v memcached >/dev/null || die "memcached not found (scripts/install-test-deps.sh installs it)"
command -v memcaslap >/dev/null || die "memcaslap not found (Debian package libmemcached-tools)"
command -v python3 >/dev/null || die "python3 not found"

# --- the two sides ----------------------------------------------------------------------------
b_override="${BENCH_B_CMD:-}"
if [[ -n "$b_override" ]]; then
    ((write == 0)) || die "--write with BENCH_B_CMD: only flotilla-vs-memcached figures go into docs/benchmarks.md"
    b_name="B (BENCH_B_CMD)"
    b_version="override: ${b_override}"
else
    flotilla="$(bench_flotilla "$write")"
    b_name="flotilla"
    b_version="$("$flotilla" --version 2>/dev/null | head -n 1 || true)"
    if [[ -z "$b_version" ]]; then b_version="flotilla (version unknown: no --version)"
    elif [[ "$b_version" != flotilla* ]]; then b_version="flotilla ${b_version}"
    fi
fi
a_name="memcached"
a_version="$(memcached -V 2>/dev/null | head -n 1)"

work="$(mktemp -d "${TMPDIR:-/tmp}/bench-cache.XXXXXX")"
read -r port_a port_b < <(free_ports 2)

user_args=()
[[ "$(id -u)" -ne 0 ]] || user_args=(-u nobody)   # memcached refuses to run as root without -u
a_cmd=(memcached "${user_args[@]}" -t "$threads" -m 64 -U 0 -l 127.0.0.1 -p "$port_a")
if [[ -n "$b_override" ]]; then
    read -r -a b_cmd <<<"${b_override//\{PORT\}/$port_b}"
else
    b_cmd=("$flotilla" cache --threads "$threads" --memory 64MiB --listen "127.0.0.1:${port_b}"
           --admin 127.0.0.1:0 --log-format json)
fi

say "A: ${a_cmd[*]}"
"${a_cmd[@]}" >"$work/a.log" 2>&1 &
pid_a=$!; pids+=("$pid_a")
say "B: ${b_cmd[*]}"
"${b_cmd[@]}" >"$work/b.log" 2>&1 &
pid_b=$!; pids+=("$pid_b")

wait_ready "$port_a" "$pid_a" "$a_name" 'version\r\n' 8 '^VERSION'
wait_ready "$port_b" "$pid_b" "$b_name" 'version\r\n' 8 '^VERSION'

write_memcaslap_config "$work/memcaslap.cfg"

# trial NAME PORT PID SECONDS OUTFILE — runs memcaslap once; checks the server survived.
trial() {
    local name="$1" port="$2" pid="$3" secs="$4" out="$5"
    if ! timeout "$((secs + 60))" memcaslap -s "127.0.0.1:${port}" -F "$work/memcaslap.cfg" \
        -T "$client_threads" -c "$conns" -w 1k -t "${secs}s" -S "${secs}s" >"$out" 2>&1; then
        die "memcaslap against $name failed: $(tail -n 5 "$out")"
    fi
    kill -0 "$pid" 2>/dev/null || die "$name died during the trial"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

if ((warmup_s > 0)); then
    say "warm-up: ${warmup_s}s each, not recorded"
    trial "$a_name" "$port_a" "$pid_a" "$warmup_s" "$work/warmup-a.out"
    trial "$b_name" "$port_b" "$pid_b" "$warmup_s" "$work/warmup-b.out"
fi

results="$work/results.tsv"
: >"$results"
total_trials=$((rounds * 2))
n=0
for ((r = 1; r <= rounds; r++)); do
    for side in A B; do
        n=$((n + 1))
        if [[ "$side" == A ]]; then name="$a_name" port="$port_a" pid="$pid_a"; else name="$b_name" port="$port_b" pid="$pid_b"; fi
        out="$work/round${r}-${side}.out"
        say "trial ${n}/${total_trials}: round ${r}, ${name}, ${duration_s}s"
        trial "$name" "$port" "$pid" "$duration_s" "$out"
        read -r tps p99 mean misses < <(parse_memcaslap "$out")
        [[ "$tps" != PARSE_ERROR ]] || die "could not parse memcaslap output $out"
        rss="$(rss_kb "$pid")"
        printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\n' "$side" "$r" "$tps" "$p99" "$mean" "$rss" "$misses" >>"$results"
        printf '  %-16s round %d: %9d ops/s  p99<=%6d us  mean %5d us  RSS %7.1f MiB  get_misses %d\n' \
            "$name" "$r" "$tps" "$p99" "$mean" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$misses" >&2
    done
done

cpu_model="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
reproduce="scripts/bench-cache.sh --rounds ${rounds} --duration ${duration} --threads ${threads}"
[[ "$conns" == 32 ]] || reproduce+=" --conns ${conns}"
[[ "$client_threads" == 2 ]] || reproduce+=" --client-threads ${client_threads}"
[[ "$warmup" == 3s ]] || reproduce+=" --warmup ${warmup}"
reproduce+=" --write"

export BENCH_RESULTS="$results" BENCH_A_NAME="$a_name" BENCH_B_NAME="$b_name"
export BENCH_A_VERSION="$a_version" BENCH_B_VERSION="$b_version" BENCH_CPU="$cpu_model"
nproc_n="$(nproc)"
export BENCH_NPROC="$nproc_n" BENCH_ROUNDS="$rounds" BENCH_DURATION="$duration" BENCH_THREADS="$threads"
export BENCH_CONNS="$conns" BENCH_CLIENT_THREADS="$client_threads" BENCH_WARMUP="$warmup"
export BENCH_REPRODUCE="$reproduce" BENCH_DOC="$doc" BENCH_WRITE="$write"
export BENCH_A_CMD_SHOWN="memcached ${user_args[*]+${user_args[*]} }-t ${threads} -m 64 -U 0 -l 127.0.0.1 -p PORT"
export BENCH_B_CMD_SHOWN="flotilla cache --threads ${threads} --memory 64MiB --listen 127.0.0.1:PORT --admin 127.0.0.1:0 --log-format json"
[[ -z "$b_override" ]] || BENCH_B_CMD_SHOWN="$b_override"

python3 - <<'PY'
import datetime, os, re, statistics, sys

e = os.environ
rows = [line.rstrip("\n").split("\t") for line in open(e["BENCH_RESULTS"]) if line.strip()]
def col(side, i):
    return [float(r[i]) for r in rows if r[0] == side]
med = {s: {k: statistics.median(col(s, i)) for k, i in (("tps", 2), ("p99", 3), ("mean", 4), ("rss", 5))}
       for s in ("A", "B")}
ratio = {k: (med["B"][k] / med["A"][k] if med["A"][k] else float("nan")) for k in med["A"]}
a, b = e["BENCH_A_NAME"], e["BENCH_B_NAME"]

print()
print(f"medians over {e['BENCH_ROUNDS']} rounds of {e['BENCH_DURATION']} "
      f"(90% get / 10% set, 100-byte values, {e['BENCH_CONNS']} connections, server threads {e['BENCH_THREADS']}):")
print(f"  {'server':<18} {'ops/s':>10} {'p99 bucket':>11} {'mean':>8} {'RSS':>10}")
for s, name in (("A", a), ("B", b)):
    m = med[s]
    print(f"  {name:<18} {m['tps']:>10.0f} {m['p99']:>8.0f} us {m['mean']:>5.0f} us {m['rss'] / 1024:>6.1f} MiB")
print(f"  {'ratio ' + b.split()[0] + '/' + a:<18} {ratio['tps']:>10.2f} {ratio['p99']:>11.2f} "
      f"{ratio['mean']:>8.2f} {ratio['rss']:>10.2f}")
print("  p99 is the upper bound of memcaslap's log2 latency bucket holding the 99th percentile "
      "(memcaslap prints no percentiles); mean is memcaslap's exact mean latency.")

if e["BENCH_WRITE"] != "1":
    sys.exit(0)

doc = e["BENCH_DOC"]
text = open(doc).read()
begin, end = "<!-- bench-cache:begin -->", "<!-- bench-cache:end -->"
if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
    sys.exit(f"bench-cache: error: {doc} must contain one {begin} ... {end} section")

date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [
    begin,
    f"Measured {date} on {e['BENCH_NPROC']} cores ({e['BENCH_CPU']}), both servers on 127.0.0.1, "
    f"load generator on the same machine.",
    "",
    f"- Versions: {e['BENCH_A_VERSION']}; {e['BENCH_B_VERSION']}.",
    f"- Workload: memcaslap, 90 % get / 10 % set, 32-byte keys, 100-byte values, "
    f"{e['BENCH_CONNS']} connections ({e['BENCH_CLIENT_THREADS']} client threads), "
    f"{e['BENCH_DURATION']} per trial, {e['BENCH_ROUNDS']} round(s) alternating memcached / flotilla "
    + ("without warm-up" if e["BENCH_WARMUP"] in ("0", "0s") else f"after a {e['BENCH_WARMUP']} warm-up each")
    + "; figures are medians over the rounds.",
    f"- memcached: `{e['BENCH_A_CMD_SHOWN']}`",
    f"- flotilla: `{e['BENCH_B_CMD_SHOWN']}`",
    f"- Reproduce: `{e['BENCH_REPRODUCE']}`",
    "",
    "| | throughput (ops/s) | p99 latency (log2 bucket bound) | mean latency | RSS at end of trial |",
    "| --- | ---: | ---: | ---: | ---: |",
]
for s, name in (("A", a), ("B", b)):
    m = med[s]
    lines.append(f"| {name} | {m['tps']:.0f} | ≤ {m['p99']:.0f} µs | {m['mean']:.0f} µs | {m['rss'] / 1024:.1f} MiB |")
lines.append(f"| **flotilla / memcached** | **{ratio['tps']:.2f}** | **{ratio['p99']:.2f}** | "
             f"**{ratio['mean']:.2f}** | **{ratio['rss']:.2f}** |")
lines += [
    "",
    "p99: memcaslap reports no percentiles, only a log2 histogram of per-operation latency; the figure is "
    "the upper bound of the bucket holding the 99th percentile, so it moves in powers of two. "
    "Mean latency is memcaslap's own (exact) mean.",
    "",
    "<details><summary>every trial</summary>",
    "",
    "| round | server | ops/s | p99 bound (µs) | mean (µs) | RSS (MiB) |",
    "| ---: | --- | ---: | ---: | ---: | ---: |",
]
for r in rows:
    name = a if r[0] == "A" else b
    lines.append(f"| {r[1]} | {name} | {r[2]} | {r[3]} | {r[4]} | {int(r[5]) / 1024:.1f} |")
lines += ["", "</details>", end]
new = text[: text.index(begin)] + "\n".join(lines) + text[text.index(end) + len(end):]
open(doc, "w").write(new)
print(f"bench-cache: wrote results into {doc}", file=sys.stderr)
PY
