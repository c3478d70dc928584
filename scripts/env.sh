# Sourced by the scripts: the environment every build and test step shares.
# npm's wasm-opt (binaryen 132) first on PATH, where Trunk looks for it.
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# Mesa prints a warning per process without a runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
# Trunk: no update check, no downloads (Trunk.toml also says offline).
export TRUNK_SKIP_VERSION_CHECK=true
