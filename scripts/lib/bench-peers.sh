# Shared by the bench scripts (source it right after `set -euo pipefail`): messages and --help
# from the script's own header, durations, the flotilla binary to measure, memcaslap's output,
# the processes a benchmark starts (stopped on any exit), free loopback ports, and memcached
# servers.

bench_name="$(basename "$0" .sh)"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
doc="${repo}/docs/benchmarks.md"

# --help: the script's header comment, from its second line to `set -euo pipefail`.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { printf '%s: error: %s\n' "$bench_name" "$*" >&2; exit 2; }
say() { printf '%s: %s\n' "$bench_name" "$*" >&2; }

# parse_options "VALUED" "FLAGS" ARGS...: each `--NAME VALUE` whose NAME is in VALUED (names
# separated by spaces) sets the variable NAME (dashes as underscores) to VALUE; each `--NAME` in
# FLAGS sets it to 1; -h and --help print the script's usage and exit.
parse_options() {
    local valued=" $1 " flags=" $2 " name
    shift 2
    while (($# > 0)); do
        name="${1#--}"
        if [[ "$1" == -h || "$1" == --help ]]; then
            usage
            exit 0
        elif [[ "$1" == --* && "$valued" == *" $name "* ]]; then
            (($# >= 2)) || die "$1 needs a value"
            printf -v "${name//-/_}" '%s' "$2"
            shift 2
        elif [[ "$1" == --* && "$flags" == *" $name "* ]]; then
            printf -v "${name//-/_}" '%s' 1
            shift
        else
            die "unknown argument: $1 (see --help)"
        fi
    done
}

# seconds_of DURATION: the seconds of `Ns` or `Nm` (what memcaslap, wrk and flotilla bench all take).
seconds_of() {
    local d="$1"
    if [[ "$d" =~ ^([1-9][0-9]*)s$ ]]; then echo "${BASH_REMATCH[1]}"
    elif [[ "$d" =~ ^([1-9][0-9]*)m$ ]]; then echo $((BASH_REMATCH[1] * 60))
    else die "duration must look like 10s or 2m, got '$d'"
    fi
}

# bench_flotilla WRITE: prints the flotilla binary to measure: $FLOTILLA_BIN, or else the release
# build, brought up to date with scripts/build-release.sh (unless NO_BUILD is set). With WRITE=1
# (figures for docs/benchmarks.md) a debug build is refused; otherwise it is only warned about.
bench_flotilla() {
    local write="$1" flotilla="${FLOTILLA_BIN:-${repo}/.build-release/release/flotilla}"
    if [[ -z "${FLOTILLA_BIN:-}" && -z "${NO_BUILD:-}" ]]; then
        say "building the release binary: scripts/build-release.sh"
        "${repo}/scripts/build-release.sh" >/dev/null
    fi
    [[ -x "$flotilla" ]] || die "flotilla binary not found: $flotilla"
    if [[ "$flotilla" == */debug/* ]]; then
        ((write == 0)) || die "--write with a debug build ($flotilla): the figures must come from a release build"
        say "warning: $flotilla looks like a debug build; its figures say nothing about a release build"
    fi
    printf '%s\n' "$flotilla"
}

# wait_ready PORT PID NAME REQUEST BYTES EXPECT: the first BYTES bytes of the server's answer to REQUEST match
# EXPECT within 20 s.
wait_ready() {
    local port="$1" pid="$2" name="$3" request="$4" bytes="$5" expect="$6" deadline=$((SECONDS + 20))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (log: $(tail -n 5 "$work"/*.log 2>/dev/null))"
        # shellcheck disable=SC2016 # $1, $2 and $3 are expanded by the inner bash
        if timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "$2" >&3 && head -c "$3" <&3' \
            _ "$port" "$request" "$bytes" 2>/dev/null | grep -q "$expect"; then
            return 0
        fi
        sleep 0.1
    done
    die "$name not answering on 127.0.0.1:$port after 20 s"
}

# write_memcaslap_config FILE: memcaslap's workload of every comparison: 32-byte keys, 100-byte
# values, 90 % get / 10 % set.
write_memcaslap_config() {
    cat >"$1" <<'EOF'
key
32 32 1
value
100 100 1
cmd
0 0.1
1 0.9
EOF
}

# parse_memcaslap OUTFILE: prints "TPS P99 MEAN GET_MISSES" from memcaslap's output, or PARSE_ERROR.
# memcaslap prints no percentile, only a log2 histogram of per-operation latency ("Total
# Statistics ... Log2 Dist", bucket i holds latencies in (2^(i-1), 2^i] µs): P99 is the upper
# bound 2^i of the bucket holding the 99th percentile (coarse, an upper bound); MEAN is its exact
# mean latency in µs.
parse_memcaslap() {
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

# Processes started by the script; `bench_cleanup` stops them (TERM, then KILL after 5 s), then
# removes $work unless KEEP_LOGS is set.
pids=()
work=""
bench_cleanup() {
    local pid i
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$work" ]]; then
        if [[ -n "${KEEP_LOGS:-}" ]]; then say "logs kept in $work"; else rm -rf "$work"; fi
    fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prints COUNT free loopback ports, space-separated.
free_ports() {
    python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
' "$1"
}

# Starts `memcached -t 1 -m 256` on each PORT (as nobody when root), remembered in pids.
start_memcached() {
    local port user_flag=()
    [[ "$(id -u)" == 0 ]] && user_flag=(-u nobody)
    for port in "$@"; do
        memcached "${user_flag[@]}" -t 1 -m 256 -U 0 -l 127.0.0.1 -p "$port" &
        pids+=($!)
    done
}

# write_doc_section NAME: replaces what lies between <!-- NAME:begin --> and <!-- NAME:end --> in
# docs/benchmarks.md with standard input (the markers stay); fails when the markers are missing.
# (The program goes in -c: standard input is the section's text.)
write_doc_section() {
    python3 -c '
import sys
path, name = sys.argv[1], sys.argv[2]
text = open(path).read()
begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
if begin not in text or end not in text:
    sys.exit(f"{path} has no {begin} ... {end} section")
body = sys.stdin.read().strip("\n")
if not body:
    sys.exit(f"nothing to write into the {name} section")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + begin + "\n" + body + "\n" + end + tail)
' "$doc" "$1"
    say "wrote the $1 section of docs/benchmarks.md"
}
