#!/usr/bin/env bash
# Install what the tests need and run the whole suite: the README's second command, and .ci/run's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
bash scripts/services.sh
exec .venv/bin/python -m pytest -q "$@"
