# Sourced by scripts/run and scripts/test: make uv and the locked environment available.
# Needs only Python 3.11 and the package registries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v uv >/dev/null 2>&1; then
  PY="$(command -v python3.11 || command -v python3)"
  echo "==> uv not found: installing it with $PY -m pip"
  "$PY" -m pip install --quiet --user uv 2>/dev/null || "$PY" -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi

echo "==> installing the locked environment (uv sync --frozen)"
# --compile-bytecode writes every package's .pyc at install, so the CLI starts from bytecode even where
# PYTHONDONTWRITEBYTECODE keeps Python from caching it (twice as fast: bench/RESULTS.md, "CLI latency").
# A flag here rather than [tool.uv] compile-bytecode, which would re-check 14,000 files on every `uv run`.
uv sync --frozen --python 3.11 --quiet --compile-bytecode
# The workspace's own packages are installed editable, which --compile-bytecode leaves alone. A .pyc
# older than its source is ignored, so one left behind by an edit is never used.
uv run --frozen python -m compileall -q -j 0 daemon/src api/src warehouse/src dagster_project/src
