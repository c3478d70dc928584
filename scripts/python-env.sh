#!/usr/bin/env bash
# Makes a Python virtual environment with pinned requirements, once: builds
# VENV when it is missing and installs REQUIREMENTS into it when they changed
# since the last install (a SHA256 stamp inside VENV). Safe to run again.
# Used by make-fixtures.sh and bench.sh (torch from PyPI is about 5 GB).
#
# Usage: scripts/python-env.sh VENV REQUIREMENTS
set -euo pipefail
venv="$1"
req="$2"
stamp="$venv/.requirements.sha256"
step() { printf '\n== python-env: %s\n' "$*" >&2; }

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
