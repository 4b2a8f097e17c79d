#!/usr/bin/env bash
# Builds mlr-action's Python environment in $MLR_HOME/venv from the pinned,
# hashed requirements (requirements/uv.txt, requirements/action.txt).
# $MLR_HOME/cache is what actions/cache saves and restores: uv itself and
# uv's package cache. With a warm cache nothing is downloaded.
# The package itself is not installed: action.yml puts the action's folder on
# PYTHONPATH, so nothing unpinned (no build backend) is ever fetched.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
home="${MLR_HOME:?set MLR_HOME to a scratch folder}"
python="${MLR_PYTHON:?set MLR_PYTHON to a Python 3.10+ interpreter}"
export UV_CACHE_DIR="$home/cache/uv" UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore

uv="$home/cache/uv-bin/bin/uv"
if [ ! -x "$uv" ]; then
    "$python" -m pip install --quiet --no-deps --require-hashes --target "$home/cache/uv-bin" \
        -r "$here/requirements/uv.txt"
fi
"$uv" venv --quiet --allow-existing --python "$python" "$home/venv"
"$uv" pip install --quiet --python "$home/venv/bin/python" --require-hashes -r "$here/requirements/action.txt"
