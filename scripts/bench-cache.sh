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
#   FLOTILLA_BIN   the flotilla binary (default <repo>/.build-release/release/flotilla; built with
#                  `scripts/build-release.sh` if missing, unless NO_BUILD is set)
#   BENCH_B_CMD    replaces the flotilla side with another command, for validating this script
#                  (e.g. a second memcached); {PORT} in it is replaced by the port it must serve.
#                  --write is refused then: such figures never go into docs/benchmarks.md.
#   KEEP_LOGS=1    keep the work directory (memcaslap outputs, server logs) and print its path
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
doc="${repo}/docs/benchmarks.md"

rounds=3
duration=10s
threads=2
conns=32
client_threads=2
warmup=3s
write=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { printf 'bench-cache: error: %s\n' "$*" >&2; exit 2; }
say() { printf 'bench-cache: %s\n' "$*" >&2; }

while (($# > 0)); do
    case "$1" in
        --rounds) rounds="${2:?}"; shift 2 ;;
        --duration) duration="${2:?}"; shift 2 ;;
        --threads) threads="${2:?}"; shift 2 ;;
        --conns) conns="${2:?}"; shift 2 ;;
        --client-threads) client_threads="${2:?}"; shift 2 ;;
        --warmup) warmup="${2:?}"; shift 2 ;;
        --write) write=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# Durations: memcaslap takes Ns / Nm; keep to those and know the seconds for our own timeouts.
seconds_of() {
    local d="$1"
    if [[ "$d" =~ ^([1-9][0-9]*)s$ ]]; then echo "${BASH_REMATCH[1]}"
    elif [[ "$d" =~ ^([1-9][0-9]*)m$ ]]; then echo $((BASH_REMATCH[1] * 60))
    else die "duration must look like 10s or 2m, got '$d'"
    fi
}
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
    flotilla="${FLOTILLA_BIN:-${repo}/.build-release/release/flotilla}"
    if [[ ! -x "$flotilla" ]]; then
        [[ -z "${FLOTILLA_BIN:-}" && -z "${NO_BUILD:-}" ]] || die "flotilla binary not found: $flotilla"
        say "building the release binary: scripts/build-release.sh"
        "${repo}/scripts/build-release.sh" >/dev/null
        [[ -x "$flotilla" ]] || die "build did not produce $flotilla"
    fi
    if [[ "$flotilla" == */debug/* ]]; then
        ((write == 0)) || die "--write with a debug build ($flotilla): the figures must come from a release build"
        say "warning: $flotilla looks like a debug build; its figures say nothing about a release build"
    fi
    b_name="flotilla"
    b_version="$("$flotilla" --version 2>/dev/null | head -n 1 || true)"
    if [[ -z "$b_version" ]]; then b_version="flotilla (version unknown: no --version)"
    elif [[ "$b_version" != flotilla* ]]; then b_version="flotilla ${b_version}"
    fi
fi
a_name="memcached"
a_version="$(memcached -V 2>/dev/null | head -n 1)"

work="$(mktemp -d "${TMPDIR:-/tmp}/bench-cache.XXXXXX")"
pids=()
cleanup() {
    local pid i
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${KEEP_LOGS:-}" ]]; then say "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r port_a port_b < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')

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

wait_ready() { # port pid name: a "version" answered within 20 s
    local port="$1" pid="$2" name="$3" i
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (log: $(tail -n 5 "$work"/*.log))"
        # shellcheck disable=SC2016 # $1 is expanded by the inner bash
        if timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "version\r\n" >&3 && head -c 8 <&3' _ "$port" 2>/dev/null \
            | grep -q '^VERSION'; then
            return 0
        fi
        sleep 0.1
    done
    die "$name not answering on 127.0.0.1:$port after 20 s"
}
wait_ready "$port_a" "$pid_a" "$a_name"
wait_ready "$port_b" "$pid_b" "$b_name"

cat >"$work/memcaslap.cfg" <<'EOF'
key
32 32 1
value
100 100 1
cmd
0 0.1
1 0.9
EOF

# trial NAME PORT PID SECONDS OUTFILE — runs memcaslap once; checks the server survived.
trial() {
    local name="$1" port="$2" pid="$3" secs="$4" out="$5"
    if ! timeout "$((secs + 60))" memcaslap -s "127.0.0.1:${port}" -F "$work/memcaslap.cfg" \
        -T "$client_threads" -c "$conns" -w 1k -t "${secs}s" -S "${secs}s" >"$out" 2>&1; then
        die "memcaslap against $name failed: $(tail -n 5 "$out")"
    fi
    kill -0 "$pid" 2>/dev/null || die "$name died during the trial"
}

# parse OUTFILE -> "tps p99_bound_us mean_us get_misses"
parse() {
    awk '
        /^Run time:/ { for (i = 1; i <= NF; i++) if ($i == "TPS:") tps = $(i + 1) }
        /^get_misses:/ { misses = $2 }
        /^Total Statistics \(/ { intotal = 1; next }
        intotal && /Avg:/ { mean = $2 }
        intotal && /Log2 Dist:/ { indist = 1; next }
        indist && /^[[:space:]]*[0-9]+:/ {
            b = $1; sub(":", "", b)
            for (i = 2; i <= NF; i++) { cnt[b + i - 2] = $i; if (b + i - 2 > maxb) maxb = b + i - 2 }
            next
        }
        indist { indist = 0; intotal = 0 }
        END {
            total = 0; for (b in cnt) total += cnt[b]
            if (tps == "" || total == 0) { print "PARSE_ERROR"; exit }
            cum = 0; p99 = -1
            for (b = 0; b <= maxb; b++) { cum += cnt[b]; if (cum >= 0.99 * total) { p99 = 2 ^ b; break } }
            printf "%d %d %d %d\n", tps, p99, mean, misses
        }' "$1"
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
        read -r tps p99 mean misses < <(parse "$out")
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
