"""The shipped folder: the campaign folder a job runs in, exactly as committed (DESIGN.md section 7).

Three sources, one shape (:class:`ShippedFolder`: paths, git blob ids, sizes, and the bytes on demand):

- **A commit** (GitHub mode, :func:`from_commit`): every regular file under the
  campaign folder in that commit's tree, read from git objects, never from the
  work tree.
- **The work tree in a git checkout** (local mode, :func:`from_work_tree`): the
  files git tracks or would track (``git ls-files --cached --others
  --exclude-standard``), with their content on disk now: nothing ignored.
- **The work tree with no git** (local mode): every file but ``runs/``,
  ``.mlr/`` and any ``.git/``.

Guarantees: whatever the source, ``runs/`` and ``.mlr/`` at the top of the
folder are never shipped (the ledger and the bot's state are data, not code),
and neither is anything under ``.git/``. Symlinks and submodules are not
shipped (a Hub repo cannot hold them, and a link may point anywhere); they are
listed in ``skipped`` so ``mlr validate`` names them. A path is a plain
relative POSIX path (no ``..``, no empty or ``.`` part), whatever a crafted
tree says. :attr:`ShippedFolder.digest` is a hash of every path and its git
(SHA-1) blob id, so the same content gives the same digest from any source;
:meth:`ShippedFolder.code_digest` (what a ledger row records) is the same
without ``program.md``, whose budget is not code,
and :meth:`ShippedFolder.data` checks every file's bytes against its blob id
when it reads them: a file edited between the listing and the upload or copy
is refused, never shipped under the old id. Reading is bounded by
:data:`MAX_FILES` and :data:`MAX_BYTES`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mlr_action.core import safepath
from mlr_action.core.jobs import PermanentError

MAX_FILES = 2000
MAX_BYTES = 100 * 1024 * 1024  # what a job's folder may weigh: code and configs, not data sets or weights
LARGE_BYTES = 10 * 1024 * 1024  # mlr validate warns above this
NOT_SHIPPED = ("runs", ".mlr")  # at the top of the campaign folder: the ledger and reports, the bot's state
PROGRAM_NAME = "program.md"  # shipped, but left out of the code digest
_REGULAR = ("100644", "100755")
_KINDS = {"120000": "a symlink", "160000": "a submodule"}


class ShipError(PermanentError):
    """The folder cannot be shipped as it is; the message says what to change."""


def blob_id(data: bytes) -> str:
    """git's SHA-1 blob id of ``data`` (what ``git hash-object`` prints and the Hub reports for a file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class ShippedFile:
    path: str  # relative to the campaign folder, POSIX
    oid: str  # git SHA-1 blob id of the content
    size: int


@dataclass(frozen=True)
class ShippedFolder:
    """The campaign folder as a job receives it."""

    files: tuple[ShippedFile, ...]  # sorted by path
    source: str  # where it was read from, for people: "commit 1a2b3c4d5e6f", "the work tree (...)"
    commit: str | None = None
    skipped: tuple[str, ...] = ()  # "link.py (a symlink)": present in the folder, not shipped
    reader: Callable[[ShippedFile], bytes] = field(default=lambda f: b"", repr=False, compare=False)
    note: str | None = field(default=None, compare=False)  # for the step: what a local snapshot left out

    @property
    def digest(self) -> str:
        """sha256 of every ``path oid`` line: the same content gives the same digest from any source (what an
        upload is keyed on; :meth:`code_digest` is what a row records)."""
        return self.code_digest(program="")

    def code_digest(self, program: str = PROGRAM_NAME) -> str:
        """The digest of the code alone (the row's ``folder_hash``): every file but ``program`` at the top.

        program.md is shipped (the job may read it) but is not code: raising its budget mid-campaign must not
        read as a code change. ``runs/`` and ``.mlr/`` are never in the folder.
        """
        lines = "".join(f"{f.path}\0{f.oid}\n" for f in self.files if f.path != program)
        return hashlib.sha256(lines.encode("utf-8", "surrogateescape")).hexdigest()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def get(self, path: str) -> ShippedFile | None:
        return next((f for f in self.files if f.path == path), None)

    def data(self, entry: ShippedFile) -> bytes:
        """The bytes of ``entry``, checked against its blob id."""
        data = self.reader(entry)
        if blob_id(data) != entry.oid:
            raise ShipError(f"{entry.path} changed while it was being shipped (its content no longer matches what was "
                            f"listed from {self.source}); run the step again")
        return data

    def text(self, path: str) -> str | None:
        """A file's content as text (None when it is not shipped or not UTF-8)."""
        entry = self.get(path)
        if entry is None:
            return None
        try:
            return self.data(entry).decode("utf-8")
        except UnicodeDecodeError:
            return None

    def materialize(self, dest: Path) -> None:
        """Write every file under ``dest`` (created; expected empty), never through a link."""
        for entry in self.files:
            safepath.create(dest, entry.path, self.data(entry))


def clean_path(path: str) -> str | None:
    """``path`` when it is a plain relative POSIX path that may be shipped; None otherwise."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None
    if any(p.casefold() == ".git" for p in parts) or parts[0] in NOT_SHIPPED:
        return None
    return path


def _bounded(files: list[ShippedFile], source: str) -> None:
    if len(files) > MAX_FILES:
        raise ShipError(f"the campaign folder ({source}) has {len(files)} files, over the {MAX_FILES} a job may be "
                        "shipped with: keep data sets and checkpoints out of it (download them in the script, "
                        "or ignore them in .gitignore)")
    total = sum(f.size for f in files)
    if total > MAX_BYTES:
        big = sorted(files, key=lambda f: -f.size)[:3]
        named = ", ".join(f"{f.path} ({f.size // 1024 // 1024} MB)" for f in big)
        raise ShipError(f"the campaign folder ({source}) weighs {total // 1024 // 1024} MB, over the "
                        f"{MAX_BYTES // 1024 // 1024} MB a job may be shipped with (largest: {named}): keep data sets "
                        "and checkpoints out of it (download them in the script from the Hub)")


# -- from a commit (GitHub mode) ------------------------------------------------------------------------


def from_commit(git: Callable[..., subprocess.CompletedProcess], commit: str, folder: str) -> ShippedFolder:
    """The folder ``folder`` (a tree path, ``.`` for the top) of ``commit``, through ``git(*args, input=...)``."""
    prefix = "" if folder == "." else folder + "/"
    args = ["--literal-pathspecs", "ls-tree", "-r", "-l", "-z", "--full-tree", commit]
    listing = git(*args, *(["--", folder] if prefix else [])).stdout.decode("utf-8", "surrogateescape")
    files, skipped, by_path = [], [], {}
    for item in filter(None, listing.split("\0")):
        meta, path = item.split("\t", 1)
        mode, _kind, oid, size = meta.split()
        if not path.startswith(prefix):
            continue
        rel = clean_path(path[len(prefix):])
        if rel is None:
            continue
        if mode not in _REGULAR:
            skipped.append(f"{rel} ({_KINDS.get(mode, f'mode {mode}')})")
            continue
        by_path[rel] = oid
        files.append(ShippedFile(rel, oid, int(size)))
    source = f"commit {commit[:12]}"
    _bounded(files, source)
    if any(len(oid) != 40 for oid in by_path.values()):  # a SHA-256 repository: ids are recomputed as git SHA-1
        data = {f.path: git("cat-file", "blob", f.oid).stdout for f in files}
        files = [ShippedFile(f.path, blob_id(data[f.path]), f.size) for f in files]
        return ShippedFolder(tuple(sorted(files, key=lambda f: f.path)), source, commit, tuple(skipped),
                             reader=lambda f: data[f.path])
    return ShippedFolder(tuple(sorted(files, key=lambda f: f.path)), source, commit, tuple(skipped),
                         reader=lambda f: git("cat-file", "blob", by_path[f.path]).stdout)


# -- from the work tree (local mode) -----------------------------------------------------------------------

WORK_TREE_GIT = "the work tree (the files git tracks or would track)"
WORK_TREE_ALL = "the work tree (no git: every file but runs/, .mlr/ and .git/)"


def from_work_tree(folder: Path) -> ShippedFolder:
    """The campaign folder on disk, as :func:`from_commit` would see it once committed (see the module's doc)."""
    folder = Path(folder)
    names = _git_files(folder)
    source = WORK_TREE_GIT if names is not None else WORK_TREE_ALL
    if names is None:
        names = _walk(folder)
    sizes, skipped = [], []
    for name in sorted(set(names)):
        rel = clean_path(name)
        if rel is None:
            continue
        try:
            info = os.lstat(folder / rel)
        except OSError:  # tracked but deleted, or gone since the listing
            continue
        if stat.S_ISLNK(info.st_mode):
            skipped.append(f"{rel} (a symlink)")
        elif stat.S_ISREG(info.st_mode):
            sizes.append(ShippedFile(rel, "", info.st_size))
    _bounded(sizes, source)
    files = []
    for entry in sizes:
        content = _read_shipped(folder, entry.path)
        files.append(ShippedFile(entry.path, blob_id(content), len(content)))
    return ShippedFolder(tuple(files), source, None, tuple(skipped), reader=lambda f: _read_shipped(folder, f.path))


def read_nofollow(folder: Path, rel: str) -> bytes:
    """The bytes of ``rel`` under ``folder``, every part of ``rel`` opened without following a link.

    :class:`OSError` when it cannot be read (the caller says why in its own words); :class:`ShipError` when it
    is over :data:`MAX_BYTES`. The one reader of a file a job is given from disk (the backends' script alone too).
    """
    parts = rel.split("/")
    with safepath.folder(folder, "/".join(parts[:-1]) or ".", create=False) as dir_fd:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > MAX_BYTES:
            raise ShipError(f"{rel} in {folder} is over the {MAX_BYTES // 1024 // 1024} MB a job's folder may weigh: "
                            "keep it out of the folder (download it in the script)")
        return fh.read()


def _read_shipped(folder: Path, rel: str) -> bytes:
    try:
        return read_nofollow(folder, rel)
    except OSError as exc:
        raise ShipError(f"cannot read {rel} in {folder} ({exc.strerror or exc}); it is not shipped as it is: fix its "
                        "permissions, or remove it from the folder") from None


def _git_files(folder: Path) -> list[str] | None:
    """What git tracks or would track under ``folder`` (relative to it); None when it is not in a checkout."""
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    probe = subprocess.run(["git", "-C", str(folder), "rev-parse", "--is-inside-work-tree"],
                           capture_output=True, text=True, env=env)
    if probe.returncode != 0 or probe.stdout.strip() != "true":
        return None
    listing = subprocess.run(["git", "-C", str(folder), "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                              "--", "."], capture_output=True, env=env)
    if listing.returncode != 0:
        raise ShipError(f"git cannot list the files of {folder}: "
                        f"{listing.stderr.decode(errors='replace').strip()[:300]}")
    return [p for p in listing.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _walk(folder: Path) -> list[str]:
    names = []
    for parent, dirs, files in os.walk(folder):  # never follows a link into a folder
        rel_parent = Path(parent).relative_to(folder).as_posix()
        at_top = rel_parent == "."
        dirs[:] = sorted(d for d in dirs if d != ".git" and not (at_top and d in NOT_SHIPPED))
        for name in files:
            names.append(name if at_top else f"{rel_parent}/{name}")
        names += [d if at_top else f"{rel_parent}/{d}" for d in dirs if os.path.islink(os.path.join(parent, d))]
    return names


def one_file(name: str, data: bytes) -> ShippedFolder:
    """A folder holding just the script (a spec built without a folder, as older callers do)."""
    entry = ShippedFile(name, blob_id(data), len(data))
    return ShippedFolder((entry,), "the script alone", reader=lambda f: data)
