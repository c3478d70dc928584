#!/usr/bin/env bash
# Sets up what is missing, builds the app in release mode and serves it on
# http://127.0.0.1:8080 (Ctrl-C stops it). Extra arguments go to `trunk serve`,
# e.g. `scripts/serve.sh --port 9000`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo fetch --quiet
# SmolLM2-135M-Instruct beside the app, a base model the page offers (cached after the first run).
scripts/serve-models.sh
exec trunk serve --release "$@"
