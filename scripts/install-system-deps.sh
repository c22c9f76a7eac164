#!/usr/bin/env bash
# Install the system (Debian) packages the course's tests need, when missing:
#   chromium, chromium-driver  headless browser for tests/test_browser.py (never `playwright install`)
#   fonts-liberation           so pages and screenshots render with real fonts (recommends are skipped)
#   bubblewrap                 sandbox that runs student code during grading
#   postgresql                 the PostgreSQL gradebook test starts a private server
#   npm (only without one)     installs JupyterHub's proxy (configurable-http-proxy) for the hub tests
# Idempotent and quiet; works without a terminal (CI). As root it calls apt-get directly,
# otherwise `sudo -n`; with neither it says what to run and exits 1.
set -euo pipefail

PACKAGES=(chromium chromium-driver fonts-liberation bubblewrap postgresql)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
command -v npm >/dev/null 2>&1 || missing+=(npm)  # a machine's own Node.js install is kept
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: apt-get not found; install these packages yourself: ${missing[*]}" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "install-system-deps: need root to install: ${missing[*]}" >&2
    echo "  run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Use-Pty=0 "${missing[@]}" </dev/null >/dev/null
