"""Real git repositories for tests: a bare ``origin``, clones of it, and a second writer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

IDENTITY = ["-c", "user.name=Someone", "-c", "user.email=someone@example.com", "-c", "commit.gpgsign=false"]


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def isolate_git(monkeypatch, tmp_path: Path) -> None:
    """No user or system git config, no tokens: every test sees the same git."""
    config = tmp_path / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GITHUB_TOKEN", "MLR_LEDGER_BRANCH", "GIT_CONFIG_COUNT", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def row(iter_: int, status: str = "submitted", **extra) -> str:
    data = {"iter": iter_, "ts": f"2025-01-01T00:00:{iter_:02d}+00:00", "status": status, "config": {"lr": iter_},
            "job_id": f"job-{iter_}", "timeout": "1m", **extra}
    return json.dumps(data)


def make_origin(tmp_path: Path, files: dict[str, str]) -> Path:
    """A bare repository whose main branch holds ``files``."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(origin), str(seed))
    for name, text in files.items():
        (seed / name).parent.mkdir(parents=True, exist_ok=True)
        (seed / name).write_text(text)
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "initial")
    git(seed, "push", "-q", "origin", "HEAD:main")
    return origin


def clone(origin: Path, where: Path, *args: str) -> Path:
    git(where.parent, "clone", "-q", *args, str(origin), str(where))
    return where


def append(path: Path, *lines: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write("".join(line + "\n" for line in lines))


def show(origin: Path, ref: str, path: str) -> str:
    return git(origin, "show", f"{ref}:{path}")


def mktree(repo: Path, entries: dict) -> str:
    """A tree built with plumbing, so it may hold what porcelain refuses (``..``, ``.``, ``.git``).

    ``entries`` maps a name to ``str``/``bytes`` (a regular file), a ``dict`` (a folder),
    ``("120000", target)`` (a symlink), ``("100755", text)`` (an executable) or
    ``("160000", commit)`` (a submodule).
    """
    lines = []
    for name, value in entries.items():
        if isinstance(value, dict):
            lines.append(f"040000 tree {mktree(repo, value)}\t{name}")
            continue
        mode, data = value if isinstance(value, tuple) else ("100644", value)
        if mode == "160000":
            lines.append(f"160000 commit {data}\t{name}")
            continue
        blob = data.encode() if isinstance(data, str) else data
        oid = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=blob, capture_output=True,
                             check=True).stdout.decode().strip()
        lines.append(f"{mode} blob {oid}\t{name}")
    proc = subprocess.run(["git", "mktree", "--missing"], cwd=repo, input="".join(f"{ln}\n" for ln in lines).encode(),
                          capture_output=True, check=True)
    return proc.stdout.decode().strip()


def plant(origin: Path, branch: str, entries: dict, *, parent: str | None = None) -> str:
    """Point ``branch`` of the bare ``origin`` at a commit of ``entries``, as a push of a hostile tree would."""
    tree = mktree(origin, entries)
    commit = git(origin, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", "planted")
    git(origin, "update-ref", f"refs/heads/{branch}", commit)
    return commit


def push_from(work: Path, message: str, branch: str = "main") -> None:
    """A concurrent writer: commit everything and push, as a person or another tick would."""
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", f"HEAD:{branch}")
