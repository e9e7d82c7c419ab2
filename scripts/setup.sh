#!/usr/bin/env bash
# Everything a fresh machine needs: system packages (when root), uv, and the project's venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: bubblewrap (model sandbox), PostgreSQL (database tests), Chromium (browser test),
# Redis (the Celery broker of scale-out workers, started by the tests on a free port), wrk (load).
APT_PACKAGES=(bubblewrap postgresql chromium redis-server wrk)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "installing system packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # The package starts its own cluster on 5432; the tests run their own server on a free port.
        if command -v pg_ctlcluster >/dev/null; then pg_ctlcluster --force 15 main stop 2>/dev/null || true; fi
        # Likewise Redis on 6379: the tests start their own.
        if command -v service >/dev/null; then service redis-server stop >/dev/null 2>&1 || true; fi
    else
        echo "warning: missing system packages ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
    fi
fi

if ! command -v uv >/dev/null; then
    echo "installing uv"
    python3 -m pip install -q uv
fi
# Bytecode compiled once at install: every sandbox box and fresh process skips compiling torch.
uv sync --all-extras --frozen --compile-bytecode -q
