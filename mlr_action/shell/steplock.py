"""One step per repository at a time: the lock under ``.mlr/``.

Guarantees:

- :func:`lock` is held for the whole step and dies with the process that
  holds it; a second step finds it taken and raises :class:`Busy` (the step
  then does nothing and exits 1).
- Nothing under ``.mlr/`` is written through a symlink: every path the bot
  writes there (:data:`STATE_PATHS`) is checked before anything is written,
  and the lock file is opened without following a link and without
  truncating (:mod:`mlr_action.core.safepath`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from mlr_action.core import safepath


class Busy(Exception):
    """Another step holds the lock."""


STATE_DIR = Path(".mlr")
# What the bot writes under .mlr/: the folder, its .gitignore, the step's lock, the local backend's registry.
STATE_PATHS = (STATE_DIR / ".gitignore", STATE_DIR / "step.lock", STATE_DIR / "jobs" / "lock")


@contextlib.contextmanager
def lock(root: Path) -> Iterator[None]:
    """One step per repository at a time; the lock dies with the process that holds it.

    Nothing under ``.mlr/`` is written through a symlink (a committed ``.mlr/step.lock -> ../.git/config``
    would otherwise be truncated): every path the bot writes there is checked first, then opened without
    following a link and without truncating (:mod:`mlr_action.core.safepath`).
    """
    for path in STATE_PATHS:
        safepath.check(root, path)
    safepath.create(root, STATE_PATHS[0], b"*\n")
    fd = safepath.open_lock(root, STATE_PATHS[1])
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy() from None
        yield
    finally:
        os.close(fd)  # closing releases the flock
