#!/usr/bin/env bash
# Installs every Debian package chatd needs to build, run and test.
# Idempotent: prints nothing and changes nothing when all is present.
set -euo pipefail

pkgs=(
    build-essential cmake pkg-config clang
    libmicrohttpd-dev libjansson-dev libsqlite3-dev sqlite3
    libvulkan-dev glslc mesa-vulkan-drivers vulkan-tools
    libcurl4-openssl-dev libpcre2-dev libsodium-dev libinih-dev libutf8proc-dev
    python3 python3-jinja2 chromium
)
# Node.js and npm may come from outside Debian (they then conflict with Debian's npm):
# ask for Debian's only when the commands are absent.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node packages for the SDK and browser tests live in tests/node (not committed); they
# are installed again when package.json names one that node_modules lacks.
here=$(cd "$(dirname "$0")/.." && pwd)
node_missing() {
    node -e 'const fs = require("fs"); const d = process.argv[1];
        const deps = Object.keys(require(d + "/package.json").dependencies || {});
        process.exit(deps.every((p) => fs.existsSync(d + "/node_modules/" + p + "/package.json")) ? 1 : 0)' \
        "$here/tests/node"
}
if [ -f "$here/tests/node/package.json" ] && node_missing; then
    echo "setup: installing node test packages"
    (cd "$here/tests/node" && npm ci --silent --no-audit --no-fund >/dev/null)
fi
