"""What the bot reads and writes under ``runs/``: only regular files at clean paths, never through a symlink.

:class:`RunsFiles` is the part of :class:`~mlr_action.github.gitrepo.GitRepo`
that lists and checks out ``runs/``; the errors of the git adapter live here
too, so both modules raise the same ones. Guarantees:

- :func:`unsafe_entry` refuses every tree entry outside ``runs/``, with an
  empty, ``.``, ``..`` or ``.git`` part or a control character in its path,
  and every entry that is not a regular file (a symlink, a submodule).
- :meth:`RunsFiles.tree_runs` raises :class:`UnsafeTree` naming every such
  entry of a commit (and a ``runs`` that is not a folder) before anything is
  written; :meth:`RunsFiles.checkout_runs` writes only files inside ``runs/``
  itself, refusing (:class:`UnsafeWorktree`) a ``runs/`` in the work tree
  that is a symlink, a file or holds a symlink.
- :func:`write_file` replaces a file atomically: a reader never sees half a
  ledger, and a failed write leaves no temporary file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mlr_action.core.jobs import PermanentError

REGULAR_MODES = ("100644", "100755")  # a tracked regular file; 120000 is a symlink, 160000 a submodule
_KINDS = {"120000": "a symlink", "160000": "a submodule", "040000": "a folder"}


class GitError(PermanentError):
    """git cannot do this and will not by retrying: the message says what to change."""


class UnsafeTree(GitError):
    """A commit's entries under runs/ the bot will not write: ``problems`` names each (``runs/.. has a `..` ...``)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class UnsafeWorktree(UnsafeTree):
    """runs/ in the work tree is not a plain folder (a symlink, or a symlink in it)."""


def unsafe_entry(path: str, mode: str, runs_dir: str) -> str | None:
    """Why the tree entry ``path`` (of ``mode``) may not be written under ``runs_dir``; None when it may."""
    if not path.startswith(f"{runs_dir}/"):
        return "is outside runs/"
    for part in path[len(runs_dir) + 1:].split("/"):
        if part in ("", ".", ".."):
            return f"has a `{part}` in its path" if part else "has an empty name in its path"
        if part.casefold() == ".git":
            return "is under a .git folder, which is git's own"
        if any(ord(c) < 32 or c == "\x7f" for c in part):
            return "has a control character in its name"
    if mode not in REGULAR_MODES:
        return "is " + _KINDS.get(mode, f"mode {mode}") + ", not a regular file"
    return None


class RunsFiles:
    """runs/ in a commit and in the work tree; the repository that inherits it gives ``top``, ``runs_dir``,
    ``git``, ``out``, ``scrub`` and ``blob``."""

    top: Path

    def worktree_runs(self) -> dict[str, str]:
        """{path: blob id} of the regular files under runs/ that git would add (ignores honoured)."""
        listed = self.git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", self.runs_dir).stdout
        paths = sorted({p for p in listed.decode().split("\0") if p and (self.top / p).is_file()
                        and not (self.top / p).is_symlink() and "\n" not in p})
        if not paths:
            return {}
        ids = self.out("hash-object", "-w", "--stdin-paths", input="\n".join(paths).encode()).split("\n")
        return dict(zip(paths, ids))

    def tree_runs(self, commit: str | None) -> dict[str, str]:
        """{path: blob id} of the files under runs/ in ``commit``; :class:`UnsafeTree` when any entry is
        not a regular file at a clean path under runs/ (``..``, ``.``, ``.git``, a symlink, a submodule)."""
        if commit is None:
            return {}
        problems = self._runs_entry_problems(commit)
        proc = self.git("-c", "core.quotePath=false", "ls-tree", "-r", "-z", commit, "--", f"{self.runs_dir}/",
                        check=False)
        if proc.returncode != 0:
            detail = failure_detail(self.scrub(proc.stderr.decode(errors="replace")))
            raise UnsafeTree(problems + [f"its tree cannot be listed ({detail})"])
        files = {}
        for entry in filter(None, proc.stdout.decode("utf-8", errors="surrogateescape").split("\0")):
            meta, path = entry.split("\t", 1)
            mode, _kind, oid = meta.split()
            why = unsafe_entry(path, mode, self.runs_dir)
            if why:
                problems.append(f"{path} {why}")
            else:
                files[path] = oid
        if problems:
            raise UnsafeTree(problems)
        return files

    def _runs_entry_problems(self, commit: str) -> list[str]:
        """runs/ itself (and the folders above it) must be folders in ``commit``, or absent."""
        parts = self.runs_dir.split("/")
        paths = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        listing = self.git("--literal-pathspecs", "ls-tree", "-z", commit, "--", *paths, check=False).stdout.decode()
        problems = []
        for entry in filter(None, listing.split("\0")):
            meta, path = entry.split("\t", 1)
            mode = meta.split()[0]
            if path in paths and mode != "040000":
                kind = "a file" if mode in REGULAR_MODES else _KINDS.get(mode, f"mode {mode}")
                problems.append(f"{'runs' if path == self.runs_dir else path} is {kind}, not a folder")
        return problems

    def checkout_runs(self, commit: str | None, *, mirror: bool = False) -> None:
        """Write runs/ files of ``commit`` that differ in the work tree; ``mirror`` also removes the others.

        The whole tree is checked before the first write (:meth:`tree_runs`), and every write lands in
        runs/ itself, never through a symlink (:meth:`runs_file`).
        """
        if commit is None:
            return
        self.check_worktree_runs()
        wanted, here = self.tree_runs(commit), self.worktree_runs()
        for path, oid in wanted.items():
            if here.get(path) != oid:
                write_file(self.runs_file(path), self.blob(oid))
        if mirror:
            for path in here.keys() - wanted.keys():
                self.runs_file(path).unlink(missing_ok=True)

    def check_worktree_runs(self) -> None:
        """runs/ in the work tree must be a real folder with no symlink in it: the bot writes only there."""
        runs = self.top / self.runs_dir
        if runs.is_symlink():
            raise UnsafeWorktree([f"runs is a symlink in the work tree ({runs})"])
        if runs.exists() and not runs.is_dir():
            raise UnsafeWorktree([f"runs is a file in the work tree ({runs}), not a folder"])
        links = sorted(str(p.relative_to(self.top)) for p in _walk(runs) if p.is_symlink())
        if links:
            raise UnsafeWorktree([f"{link} is a symlink in the work tree" for link in links[:5]])

    def runs_file(self, path: str) -> Path:
        """The work-tree file for ``path`` under runs/, refusing one that would be reached through a symlink."""
        target = self.top / path
        if unsafe_entry(path, "100644", self.runs_dir) or target.is_symlink() \
                or Path(os.path.realpath(target.parent)) != target.parent:
            raise UnsafeWorktree([f"{path} would be written outside runs/ (through a symlink or a `..`)"])
        return target


def failure_detail(text: str, limit: int = 300) -> str:
    """The lines of git's output that say what went wrong, on one line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if ln.startswith(("!", "error", "fatal", "remote:", "hint: Updates were"))] or lines[-1:]
    joined = " / ".join(useful)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def _walk(folder: Path):
    """Every path under ``folder``, without following a symlink."""
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            yield Path(parent) / name


def write_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (a reader never sees half a ledger)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
