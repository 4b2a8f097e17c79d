"""A stand-in for ``uv`` on a test's PATH: ``uv run [options] SCRIPT ARGS...`` runs the script with this Python.

It reads the options :mod:`mlr_action.job.runner` gives ``uv run`` as uv does
(``--no-project``; ``--with``, ``--with-requirements``, ``--python`` and
``--project`` with a value) and says each one that installs something on
stderr (``fake uv: --with-requirements requirements.txt``), as uv prints what it
resolved into the job's log. Like uv, it fails (exit 2) on an option it does
not know, on ``--with-requirements`` naming a file that is not there, and on
anything but ``run``. It installs nothing: the test's Python has what the
examples import.
"""

from __future__ import annotations

import sys
from pathlib import Path

SHIM = """#!/bin/sh
[ "$1" = run ] || { echo "fake uv: only 'uv run' is known here" >&2; exit 2; }
shift
while [ $# -gt 0 ]; do
  case "$1" in
    --no-project) shift ;;
    --with|--python|--project) echo "fake uv: $1 $2" >&2; shift 2 ;;
    --with-requirements)
      [ -f "$2" ] || { echo "error: File not found: \\`$2\\`" >&2; exit 2; }
      echo "fake uv: $1 $2" >&2; shift 2 ;;
    --*) echo "error: unexpected argument '$1'" >&2; exit 2 ;;
    *) break ;;
  esac
done
exec "{python}" "$@"
"""


def make_uv(folder: Path) -> Path:
    """Write the shim as ``folder/uv`` (executable) and return ``folder``, to put first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "uv"
    shim.write_text(SHIM.replace("{python}", sys.executable))
    shim.chmod(0o755)
    return folder
