#!/usr/bin/env bash
# Installs what Flotilla's tests and benchmarks need on a fresh Debian 12 machine (run as root).
# Idempotent: a second run changes nothing and touches no network.
#
#   Debian:  memcached (the real peer), libmemcached-tools (memcaslap, memcstat, ...),
#            nutcracker (twemproxy: the reference for ketama placement),
#            etcd-server (the election tests start their own etcd), etcd-client (etcdctl, the
#            election benchmark's peer), prometheus (promtool checks every role's /metrics),
#            python3-venv (only when the python3 on PATH cannot make a venv)
#   PyPI:    pymemcache and pytest, into <repo>/.build-venv (git-ignored; made with
#            --system-site-packages so an already installed pytest is reused)
#
# The memcached package's own daemon is stopped and disabled: tests start their own
# servers on ports they choose, and nothing may squat on 11211.
#
# Usage: scripts/install-test-deps.sh          then   .build-venv/bin/python -m pytest Tests/python
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo}/.build-venv"
python="${PYTHON:-python3}"

say() { printf 'install-test-deps: %s\n' "$*"; }

if [[ "$(id -u)" -ne 0 ]]; then
    say "warning: not root; apt-get steps will fail if a package is missing"
fi

# --- Debian packages --------------------------------------------------------------------
apt_packages=(memcached libmemcached-tools nutcracker etcd-server etcd-client prometheus)
if ! "${python}" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_packages+=(python3-venv)
fi

missing=()
for pkg in "${apt_packages[@]}"; do
    if dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed'; then
        say "apt: ${pkg} already installed"
    else
        missing+=("${pkg}")
    fi
done

if ((${#missing[@]} > 0)); then
    say "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- the packaged memcached daemon must not run -----------------------------------------
# Debian's postinst may start it (where policy-rc.d allows). Stop and disable it, quietly.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now memcached >/dev/null 2>&1 || true
fi
if [[ -x /etc/init.d/memcached ]]; then
    service memcached stop >/dev/null 2>&1 || true
    update-rc.d memcached disable >/dev/null 2>&1 || true
fi
# Fallback: the init script's pid file (only that process; nothing is killed by name).
for pidfile in /run/memcached/memcached.pid /var/run/memcached/memcached.pid /run/memcached.pid; do
    if [[ -s "${pidfile}" ]]; then
        pid="$(cat "${pidfile}")"
        if [[ "${pid}" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/${pid}/comm" 2>/dev/null || true)" == memcached ]]; then
            say "stopping packaged memcached daemon (pid ${pid})"
            kill "${pid}" 2>/dev/null || true
        fi
    fi
done
say "packaged memcached daemon: not running (tests start their own servers)"

# --- nor the packaged etcd daemon --------------------------------------------------------
# Not `service etcd stop`: its init script stops every /usr/bin/etcd, tests' own included.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
fi
if [[ -x /etc/init.d/etcd ]]; then
    update-rc.d etcd disable >/dev/null 2>&1 || true
fi
if [[ -s /run/etcd.pid ]]; then
    pid="$(cat /run/etcd.pid)"
    if [[ "${pid}" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/${pid}/comm" 2>/dev/null || true)" == etcd ]]; then
        say "stopping packaged etcd daemon (pid ${pid})"
        kill "${pid}" 2>/dev/null || true
    fi
fi

# --- Python venv with pymemcache and pytest ---------------------------------------------
if [[ -x "${venv}/bin/python" ]] && "${venv}/bin/python" -c 'import pymemcache, pytest' >/dev/null 2>&1; then
    say "venv: ${venv} already has pymemcache $("${venv}/bin/python" -c 'import pymemcache; print(pymemcache.__version__)') and pytest $("${venv}/bin/python" -c 'import pytest; print(pytest.__version__)')"
else
    if [[ ! -x "${venv}/bin/python" ]]; then
        say "venv: creating ${venv} with $("${python}" --version 2>&1)"
        "${python}" -m venv --system-site-packages "${venv}"
    fi
    say "venv: installing pymemcache and pytest from PyPI"
    "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check 'pymemcache>=4,<5' 'pytest>=7'
    "${venv}/bin/python" -c 'import pymemcache, pytest; print("install-test-deps: venv: pymemcache", pymemcache.__version__, "pytest", pytest.__version__)'
fi

say "done. Run the client tests with: ${venv#"${repo}"/}/bin/python -m pytest Tests/python"
