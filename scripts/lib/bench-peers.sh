# Shared by the bench scripts (source it): the processes a benchmark starts, stopped on any exit,
# free loopback ports, and memcached servers. Each script keeps its own `say`.

# Processes started by the script; `bench_cleanup` stops them, then removes $work unless KEEP_LOGS.
pids=()
work=""
bench_cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n "$work" ]]; then
        if [[ -n "${KEEP_LOGS:-}" ]]; then printf 'logs kept in %s\n' "$work" >&2; else rm -rf "$work"; fi
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
