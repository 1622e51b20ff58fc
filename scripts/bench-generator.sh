#!/usr/bin/env bash
# bench-generator.sh — `flotilla bench` against memcaslap and wrk: is the load generator the bottleneck?
#
# A load generator that saturates before the server does measures itself. Two comparisons drive
# one and the same server in turn with an established generator (A) and with `flotilla bench` (B),
# alternating A B A B ... for ROUNDS rounds after one untimed warm-up trial each:
#   memcache  one memcached (-t 2 -m 256); memcaslap (Debian's libmemcached-tools: 2 threads,
#             32 connections, 90 % get / 10 % set, 32-byte keys, 100-byte values) against
#             `flotilla bench memcache://...` (2 threads, 32 connections, the same mix and sizes,
#             over the same 32768 keys memcaslap cycles through: its window of 1k keys per
#             connection). Ratio flotilla bench / memcaslap throughput; target >= 1.0.
#   http      nginx (one worker, a 13-byte static file); `wrk -t1 -c32 --latency` against
#             `flotilla bench http://...` (1 thread, 32 connections).
#             Ratio flotilla bench / wrk throughput; target >= 0.9.
# Per trial it records throughput (memcaslap's "TPS:", wrk's "Requests/sec:", flotilla bench's JSON
# "throughput") and p99 latency (wrk's --latency line, flotilla bench's JSON; memcaslap prints only
# a log2 histogram, so its p99 is the upper bound of the bucket holding it), then prints medians
# and the ratios flotilla/reference. Both generators run closed loop and measure from their first
# request (flotilla bench gets --warmup 0; the warm-up trials warm the server for both). With
# --write it replaces the section between <!-- bench-generator:begin --> and
# <!-- bench-generator:end --> of docs/benchmarks.md.
#
# Usage:
#   scripts/bench-generator.sh [--rounds 3] [--duration 10s] [--warmup 3s]
#                              [--only memcache|http] [--write]
# Environment:
#   FLOTILLA_BIN   the flotilla binary (default <repo>/.build-release/release/flotilla, brought up to date with
#                  `scripts/build-release.sh` unless NO_BUILD is set)
#   KEEP_LOGS=1    keep the work directory (generator outputs, server logs) and print its path
set -euo pipefail
# shellcheck source=lib/bench-peers.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/bench-peers.sh"

rounds=3
duration=10s
warmup=3s
only=""
write=0

parse_options "rounds duration warmup only" "write" "$@"

duration_s="$(seconds_of "$duration")"
warmup_s=0
[[ "$warmup" == 0 || "$warmup" == 0s ]] || warmup_s="$(seconds_of "$warmup")"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
((rounds <= 50)) || die "--rounds at most 50"
((duration_s <= 600)) || die "--duration at most 10m"
case "$only" in
    "") comparisons=(memcache http) ;;
    memcache|http) comparisons=("$only") ;;
    *) die "--only takes memcache or http, got '$only'" ;;
esac
((write == 0)) || [[ -z "$only" ]] || die "--write needs both comparisons (drop --only)"

# Only the tools of the comparisons asked for.
missing=()
tools=()
[[ " ${comparisons[*]} " != *" memcache "* ]] || tools+=(memcached memcaslap)
[[ " ${comparisons[*]} " != *" http "* ]] || tools+=(wrk)
for tool in "${tools[@]}"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
nginx_bin="$(command -v nginx || true)"
[[ -n "$nginx_bin" ]] || [[ ! -x /usr/sbin/nginx ]] || nginx_bin=/usr/sbin/nginx
[[ -n "$nginx_bin" || " ${comparisons[*]} " != *" http "* ]] || missing+=(nginx)
((${#missing[@]} == 0)) ||
    die "not found: ${missing[*]}; install with: apt-get install memcached libmemcached-tools wrk nginx-light"
command -v python3 >/dev/null || die "python3 not found"

flotilla="$(bench_flotilla "$write")"
"$flotilla" bench --help >/dev/null 2>&1 || die "$flotilla has no 'bench' command"
flotilla_version="$("$flotilla" --version 2>/dev/null | head -n 1 || true)"
[[ "$flotilla_version" == flotilla* ]] || flotilla_version="flotilla ${flotilla_version:-(version unknown)}"

work="$(mktemp -d "${TMPDIR:-/tmp}/bench-generator.XXXXXX")"
# nginx's worker runs as nobody when started by root and must reach the static file.
chmod 755 "$work"
read -r port_mc port_http < <(free_ports 2)

results="$work/results.tsv"
: >"$results"

# run_trial KIND SIDE ROUND OUTFILE: one run of one generator; appends "KIND SIDE ROUND tps p99_us" unless
# ROUND is "warmup".
run_trial() {
    local kind="$1" side="$2" round="$3" out="$4" secs tps p99 success
    if [[ "$round" == warmup ]]; then secs="$warmup_s"; else secs="$duration_s"; fi
    local -a cmd
    case "$kind/$side" in
        memcache/A) cmd=(memcaslap -s "127.0.0.1:${port_mc}" -F "$work/memcaslap.cfg" -T 2 -c 32 -w 1k
                         -t "${secs}s" -S "${secs}s") ;;
        memcache/B) cmd=("$flotilla" bench "memcache://127.0.0.1:${port_mc}" --threads 2 --connections 32
                         --duration "${secs}s" --warmup 0 --get-ratio 0.9 --key-size 32 --value-size 100
                         --keys 32768 --json --quiet) ;;
        http/A) cmd=(wrk -t1 -c32 -d "${secs}s" --latency "http://127.0.0.1:${port_http}/") ;;
        http/B) cmd=("$flotilla" bench "http://127.0.0.1:${port_http}/" --threads 1 --connections 32
                     --duration "${secs}s" --warmup 0 --json --quiet) ;;
    esac
    if ! timeout "$((secs + 120))" "${cmd[@]}" >"$out" 2>"$out.err"; then
        die "${cmd[0]##*/} failed ($kind): $(tail -n 5 "$out" "$out.err")"
    fi
    [[ "$round" != warmup ]] || return 0
    case "$kind/$side" in
        memcache/A) read -r tps p99 _ < <(parse_memcaslap "$out") ;;
        http/A)
            ! grep -qE '^ *(Non-2xx|Socket errors)' "$out" || die "wrk saw errors: $(grep -E 'Non-2xx|Socket errors' "$out")"
            read -r tps p99 < <(awk '
                function us(v) {
                    if (v ~ /us$/) return v + 0
                    if (v ~ /ms$/) return (v + 0) * 1000
                    if (v ~ /s$/) return (v + 0) * 1000000
                    return -1
                }
                /^Requests\/sec:/ { tps = $2 }
                $1 == "99%" { p99 = us($2) }
                END { if (tps == "" || p99 == "") print "PARSE_ERROR 0"; else printf "%.0f %.0f\n", tps, p99 }' "$out") ;;
        */B)
            read -r tps p99 success < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(round(r["throughput"]), round(r["latency_us"]["p99"]), r["success_percent"])' "$out") ||
                die "could not parse flotilla bench output $out"
            python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 99.9 else 1)' "$success" ||
                die "flotilla bench saw errors ($kind): success ${success} %: $(head -c 400 "$out")" ;;
    esac
    [[ "$tps" != PARSE_ERROR ]] || die "could not parse ${cmd[0]##*/} output $out"
    printf '%s\t%s\t%s\t%s\t%s\n' "$kind" "$side" "$round" "$tps" "$p99" >>"$results"
    printf '  %-8s %-15s round %d: %9d req/s  p99 %8d us\n' "$kind" "$(side_name "$kind" "$side")" "$round" \
        "$tps" "$p99" >&2
}

side_name() {
    case "$1/$2" in
        memcache/A) echo memcaslap ;;
        http/A) echo wrk ;;
        */B) echo "flotilla bench" ;;
    esac
}

# compare KIND: warm-up trials, then ROUNDS rounds of A B against the server already running.
compare() {
    local kind="$1" r side n=0
    if ((warmup_s > 0)); then
        say "$kind: warm-up trial of ${warmup_s}s each, not recorded"
        run_trial "$kind" A warmup "$work/$kind-warmup-A.out"
        run_trial "$kind" B warmup "$work/$kind-warmup-B.out"
    fi
    for ((r = 1; r <= rounds; r++)); do
        for side in A B; do
            n=$((n + 1))
            say "$kind trial ${n}/$((rounds * 2)): round ${r}, $(side_name "$kind" "$side"), ${duration_s}s"
            run_trial "$kind" "$side" "$r" "$work/$kind-round$r-$side.out"
        done
    done
}

user_args=()
[[ "$(id -u)" -ne 0 ]] || user_args=(-u nobody) # memcached refuses to run as root without -u
memcached_cmd=(memcached "${user_args[@]}" -t 2 -m 256 -l 127.0.0.1 -p "$port_mc")

if [[ " ${comparisons[*]} " == *" memcache "* ]]; then
    write_memcaslap_config "$work/memcaslap.cfg"
    say "memcache: ${memcached_cmd[*]}"
    "${memcached_cmd[@]}" >"$work/memcached.log" 2>&1 &
    pid_mc=$!; pids+=("$pid_mc")
    wait_ready "$port_mc" "$pid_mc" memcached 'version\r\n' 8 '^VERSION'
    compare memcache
    kill -0 "$pid_mc" 2>/dev/null || die "memcached died during the trials"
fi

if [[ " ${comparisons[*]} " == *" http "* ]]; then
    mkdir -p "$work/nginx/www" "$work/nginx/temp"
    chmod 755 "$work/nginx" "$work/nginx/www"
    printf 'hello, bench\n' >"$work/nginx/www/index.html"
    chmod 644 "$work/nginx/www/index.html"
    cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/temp/body;
    proxy_temp_path $work/nginx/temp/proxy;
    fastcgi_temp_path $work/nginx/temp/fastcgi;
    uwsgi_temp_path $work/nginx/temp/uwsgi;
    scgi_temp_path $work/nginx/temp/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$port_http;
        root $work/nginx/www;
        location / { try_files /index.html =404; }
    }
}
EOF
    nginx_cmd=("$nginx_bin" -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf")
    say "http: ${nginx_cmd[*]}"
    "${nginx_cmd[@]}" >"$work/nginx.log" 2>&1 &
    pid_http=$!; pids+=("$pid_http")
    wait_ready "$port_http" "$pid_http" nginx 'GET / HTTP/1.0\r\n\r\n' 15 ' 200 OK'
    compare http
    kill -0 "$pid_http" 2>/dev/null || die "nginx died during the trials"
fi

cpu_model="$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
reproduce="scripts/bench-generator.sh --rounds ${rounds} --duration ${duration}"
[[ "$warmup" == 3s ]] || reproduce+=" --warmup ${warmup}"
reproduce+=" --write"

export BG_RESULTS="$results" BG_DOC="$doc" BG_WRITE="$write" BG_ROUNDS="$rounds" BG_DURATION="$duration"
nproc_n="$(nproc)"
# The versions of the tools that ran.
versions=""
if [[ " ${comparisons[*]} " == *" memcache "* ]]; then
    versions+="$(memcached -V 2>/dev/null | head -n 1); $(memcaslap --version 2>&1 | head -n 1); "
fi
if [[ " ${comparisons[*]} " == *" http "* ]]; then
    versions+="$("$nginx_bin" -v 2>&1 | head -n 1 | sed 's/^nginx version: //'); "
    versions+="$(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }'); "
fi
versions+="${flotilla_version}"
export BG_WARMUP="$warmup" BG_REPRODUCE="$reproduce" BG_CPU="$cpu_model" BG_NPROC="$nproc_n" BG_VERSIONS="$versions"
export BG_CMD_MEMCACHED="memcached ${user_args[*]+${user_args[*]} }-t 2 -m 256 -l 127.0.0.1 -p PORT"
export BG_CMD_MEMCASLAP="memcaslap -s 127.0.0.1:PORT -F memcaslap.cfg -T 2 -c 32 -w 1k -t ${duration} -S ${duration}"
export BG_CMD_FLOTILLA_MC="flotilla bench memcache://127.0.0.1:PORT --threads 2 --connections 32 --duration ${duration} --warmup 0 --get-ratio 0.9 --key-size 32 --value-size 100 --keys 32768 --json --quiet"
export BG_CMD_NGINX="nginx -p DIR -e DIR/error.log -c DIR/nginx.conf (worker_processes 1; daemon off; access_log off; listen 127.0.0.1:PORT; location / { try_files /index.html =404; } with a 13-byte file)"
export BG_CMD_WRK="wrk -t1 -c32 -d ${duration} --latency http://127.0.0.1:PORT/"
export BG_CMD_FLOTILLA_HTTP="flotilla bench http://127.0.0.1:PORT/ --threads 1 --connections 32 --duration ${duration} --warmup 0 --json --quiet"

python3 - <<'PY'
import datetime, os, statistics, sys

e = os.environ
rows = [line.rstrip("\n").split("\t") for line in open(e["BG_RESULTS"]) if line.strip()]
kinds = [k for k in ("memcache", "http") if any(r[0] == k for r in rows)]
names = {("memcache", "A"): "memcaslap", ("http", "A"): "wrk", ("memcache", "B"): "flotilla bench",
         ("http", "B"): "flotilla bench"}
targets = {"memcache": 1.0, "http": 0.9}
def median(kind, side, i):
    return statistics.median(float(r[i]) for r in rows if r[0] == kind and r[1] == side)
med = {(k, s): (median(k, s, 3), median(k, s, 4)) for k in kinds for s in "AB"}
ratio = {k: med[(k, "B")][0] / med[(k, "A")][0] for k in kinds}

print()
print(f"medians over {e['BG_ROUNDS']} rounds of {e['BG_DURATION']}:")
print(f"  {'workload':<9} {'generator':<15} {'req/s':>10} {'p99 (us)':>10}")
for k in kinds:
    for s in "AB":
        tps, p99 = med[(k, s)]
        bound = "<=" if (k, s) == ("memcache", "A") else ""
        print(f"  {k:<9} {names[(k, s)]:<15} {tps:>10.0f} {bound:>2}{p99:>8.0f}")
    verdict = "met" if ratio[k] >= targets[k] else "NOT met"
    print(f"  {k:<9} {'ratio B/A':<15} {ratio[k]:>10.2f}   target >= {targets[k]}: {verdict}")
print("  memcaslap's p99 is the upper bound of its log2 latency bucket (it prints no percentiles).")

if e["BG_WRITE"] != "1":
    sys.exit(0)

doc = e["BG_DOC"]
text = open(doc).read()
begin, end = "<!-- bench-generator:begin -->", "<!-- bench-generator:end -->"
if text.count(begin) == 0 and text.count(end) == 0:
    text = text.rstrip("\n") + "\n\n## flotilla bench against memcaslap and wrk\n\n" + begin + "\n" + end + "\n"
if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
    sys.exit(f"bench-generator: error: {doc} must contain one {begin} ... {end} section")

date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
warm = "without warm-up" if e["BG_WARMUP"] in ("0", "0s") else f"after a {e['BG_WARMUP']} warm-up trial each"
lines = [
    begin,
    f"Measured {date} on {e['BG_NPROC']} cores ({e['BG_CPU']}), server and generator on 127.0.0.1.",
    "",
    f"- Versions: {e['BG_VERSIONS']}.",
    f"- Trials: {e['BG_DURATION']} each, {e['BG_ROUNDS']} round(s) alternating reference / flotilla bench {warm}; "
    "figures are medians over the rounds.",
    f"- memcached: `{e['BG_CMD_MEMCACHED']}`",
    f"- memcaslap: `{e['BG_CMD_MEMCASLAP']}`, memcaslap.cfg: 32-byte keys, 100-byte values, "
    "`cmd` 0 (set) 0.1, 1 (get) 0.9",
    f"- flotilla bench: `{e['BG_CMD_FLOTILLA_MC']}`",
    f"- nginx: `{e['BG_CMD_NGINX']}`",
    f"- wrk: `{e['BG_CMD_WRK']}`",
    f"- flotilla bench: `{e['BG_CMD_FLOTILLA_HTTP']}`",
    f"- Reproduce: `{e['BG_REPRODUCE']}`",
    "",
    "| workload | reference | reference req/s | flotilla bench req/s | **ratio** | target "
    "| reference p99 | flotilla bench p99 |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for k in kinds:
    (ta, pa), (tb, pb) = med[(k, "A")], med[(k, "B")]
    ref_p99 = f"≤ {pa:.0f} µs" if k == "memcache" else f"{pa:.0f} µs"
    lines.append(f"| {k} | {names[(k, 'A')]} | {ta:.0f} | {tb:.0f} | **{ratio[k]:.2f}** | ≥ {targets[k]} "
                 f"| {ref_p99} | {pb:.0f} µs |")
lines += [
    "",
    "memcaslap reports no percentiles, only a log2 histogram of latency: its p99 is the upper bound of the "
    "bucket holding the 99th percentile. All generators run closed loop, so their p99 carries the same "
    "coordinated omission; it is here to show the generators agree, not as the servers' latency.",
    "",
    "<details><summary>every trial</summary>",
    "",
    "| workload | round | generator | req/s | p99 (µs) |",
    "| --- | ---: | --- | ---: | ---: |",
]
for r in rows:
    lines.append(f"| {r[0]} | {r[2]} | {names[(r[0], r[1])]} | {r[3]} | {r[4]} |")
lines += ["", "</details>", end]
new = text[: text.index(begin)] + "\n".join(lines) + text[text.index(end) + len(end):]
open(doc, "w").write(new)
print(f"bench-generator: wrote results into {doc}", file=sys.stderr)
PY
