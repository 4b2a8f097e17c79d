"""Where a campaign's files and outputs may be: the training script's path and each experiment's Hub repo.

Guarantees (DESIGN.md section 9):

- :func:`script_path` allows only a clean relative path inside the folder that holds program.md: no
  absolute path, no ``..``, no control character, nothing under ``.git/`` (git's own data) or ``runs/``
  (the ledger and reports); both modes apply it to the text alone.
- :func:`script_file_problems` (local mode) allows only a regular file reached through no symlink: a link
  is never followed, so the job runs the file committed at that path.
- :func:`output_repo_for` gives an experiment an output repo that matches the first ``output_repos`` glob,
  or none: a ledger row never decides where a job writes.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from mlr_action.core.program_fields import shown as _shown
from mlr_action.core.program_model import Envelope


def script_path(script: str) -> tuple[str, list[str]]:
    """``script`` as a clean relative path in the campaign folder, and what forbids it (from the text alone).

    Both modes apply these rules: relative, no ``..``, nothing under ``.git/`` (git's own data) or
    ``runs/`` (the ledger and reports: data the bot and the ledger branch write, never code).
    """
    shown = _shown(script)
    if any(ord(c) < 32 or c == "\x7f" for c in script):
        return "", [f"script: {shown} has a control character; name the file with a plain path"]
    if script.startswith("/"):
        return "", [f"script: {script} is outside the repository (an absolute path): give it relative to the "
                    "folder that holds program.md"]
    parts = [p for p in script.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "", [f"script: {script} is outside the repository or goes through `..`: give a path inside the "
                    "folder that holds program.md, without `..`"]
    if not parts:
        return "", [f"script: {shown} names no file; give the training script's path, like train.py"]
    if any(p.casefold() == ".git" for p in parts):
        return "", [f"script: {script} is under .git/, which is git's own data, not a file of the repository"]
    if parts[0] == "runs":
        return "", [f"script: {script} is under runs/, which holds the ledger and reports (data the bot and the "
                    "ledger branch write), never code to run; keep the script outside runs/"]
    return "/".join(parts), []


def script_file_problems(root: Path, script: str, shown: str) -> list[str]:
    """The work tree's file (local mode): a regular file reached through no symlink."""
    import os
    import stat

    path = Path(root)
    for part in script.split("/"):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return [f"script: {shown} does not exist next to program.md (fix the path)"]
        except OSError as exc:
            return [f"script: cannot read {shown} ({exc.strerror}); fix its permissions"]
        if stat.S_ISLNK(mode):
            inside = Path(os.path.realpath(path)).is_relative_to(Path(root).resolve())
            return [f"script: {shown} is outside the repository (use a path inside it); a symlink is never followed"
                    if not inside else
                    f"script: {shown} goes through the symlink {path.relative_to(root)}; name the file itself (a "
                    "symlink is never followed: the job runs the file committed at that path)"]
    if not stat.S_ISREG(mode):
        return [f"script: {shown} is not a regular file; name the training script itself"]
    return []


def output_repo_for(envelope: Envelope, campaign_id: str, iteration: int) -> str:
    """The Hub repo an experiment may push to: the first ``output_repos`` glob made concrete.

    The result always matches that glob, or is "" when no output repo is allowed.
    """
    if not envelope.output_repos:
        return ""
    glob = envelope.output_repos[0]
    concrete = glob.replace("*", f"{campaign_id}-{iteration:03d}", 1).replace("*", "").replace("?", "x")
    concrete = re.sub(r"\[[^\]]*\]", "x", concrete)
    return concrete if fnmatch.fnmatchcase(concrete, glob) else ""
