"""Files the bot writes under a root folder, never through a symlink (DESIGN.md section 9: data is never a path).

Every writer of the bot (the ledger, the summary, reports, research notes, the
step's lock under ``.mlr/``, the local backend's registry) goes through here.

Guarantees:

- A path is taken relative to a ``root`` (the campaign folder, or the
  checkout for ``.mlr/``); a path outside the root, or one with a ``..``, is
  refused. The root itself is the user's choice and may be reached through a
  link; nothing below it may be.
- Each folder between the root and the file is opened with ``O_NOFOLLOW``
  from its parent's descriptor, one at a time, and the file itself with
  ``O_NOFOLLOW``: a symlink anywhere below the root (the file, or a folder on
  the way) raises :class:`UnsafePath`, which names the link and the fix, and
  nothing is written. A link swapped in between a check and the write is
  refused the same way, since no name is looked up twice.
- :func:`replace` is atomic: a temporary file created with ``O_EXCL`` in the
  same folder (so a link planted at its name is never opened), fsynced, then
  renamed over the file. :func:`append` adds whole bytes with ``O_APPEND`` and
  fsyncs. :func:`open_lock` opens (or creates) a lock file without truncating
  it. Missing folders are created (``mkdir``) one at a time, each checked.
- :func:`check` and :func:`check_tree` only look (``lstat``): the step runs
  them before anything else, so a symlinked ``runs/`` is refused before a
  cent is spent, in every mode.

POSIX only (``O_NOFOLLOW``, ``dir_fd``), as the rest of the bot.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path, PurePosixPath
from typing import Iterator

from mlr_action.core.jobs import PermanentError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK, errno.ENOTDIR}  # what O_NOFOLLOW answers on a link (EMLINK: BSDs)


class UnsafePath(PermanentError):
    """A file the bot would write is a symlink, or sits in a folder that is one (or is not a folder, or is
    outside the checkout); ``shown`` is the path below the root that is at fault."""

    def __init__(self, shown: str, why: str = "is a symlink") -> None:
        self.shown = shown
        where = "the bot writes its files only inside the checkout, never through a link"
        if why in ("is a symlink", "is not a folder"):  # something in the work tree: say how to remove it
            fix = (f"{where} (one may have been committed, or left by a job's code). Remove it (`git rm --cached "
                   f"{shown}` if it is committed, then `rm {shown}`) and run again")
        else:
            fix = where
        super().__init__(f"{shown} {why}: {fix}; nothing was written there")


def relative(root: Path, path: Path | str) -> PurePosixPath:
    """``path`` (absolute, or relative to ``root``) as a plain path below ``root``; :class:`UnsafePath` otherwise."""
    path = Path(path)
    try:  # root/runs/x, as most callers build it
        path = path.relative_to(Path(root))
    except ValueError:
        if path.is_absolute():
            raise UnsafePath(str(path), f"is outside {root}") from None
        # else: already relative to the root (runs/research/001.md)
    parts = PurePosixPath(path.as_posix()).parts
    if not parts or any(p in ("", ".", "..") for p in parts):
        raise UnsafePath(path.as_posix(), "is not a plain path below the checkout")
    return PurePosixPath(*parts)


def _refusal(shown: str, parent_fd: int, name: str) -> UnsafePath:
    """Why ``name`` in ``parent_fd`` could not be opened without following a link."""
    try:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except OSError:
        return UnsafePath(shown)
    return UnsafePath(shown) if stat.S_ISLNK(mode) else UnsafePath(shown, "is not a folder")


@contextlib.contextmanager
def folder(root: Path, path: Path | str, *, create: bool = True) -> Iterator[int]:
    """A descriptor of the folder ``path`` below ``root``, every part opened without following a link."""
    rel = relative(root, path) if str(path) not in ("", ".") else PurePosixPath()
    if create:
        os.makedirs(root, exist_ok=True)  # the root is the caller's to choose: it may be reached through a link
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        done: list[str] = []
        for part in rel.parts:
            done.append(part)
            shown = "/".join(done)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in _LINK_ERRNOS:
                        raise _refusal(shown, fd, part) from None
                    raise
            except OSError as exc:
                if exc.errno in _LINK_ERRNOS:
                    raise _refusal(shown, fd, part) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def make_dirs(root: Path, path: Path | str) -> None:
    """Create the folder ``path`` below ``root`` and every missing folder on the way, refusing a link among them."""
    with folder(root, path):
        pass


def _open(dir_fd: int, name: str, flags: int, shown: str, mode: int = 0o644) -> int:
    try:
        return os.open(name, flags | _FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafePath(shown) from None
        raise


def replace(root: Path, path: Path | str, data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` in one step (a reader sees the old file or the new one)."""
    rel = relative(root, path)
    with folder(root, rel.parent) as dir_fd:
        _refuse_link(dir_fd, rel.name, str(rel))
        tmp = f".{rel.name}.{secrets.token_hex(6)}.tmp"
        fd = _open(dir_fd, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, f"{rel.parent}/{tmp}")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, rel.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise


def append(root: Path, path: Path | str, data: bytes) -> None:
    """Append ``data`` to the file at ``path`` (created when missing) and fsync."""
    rel = relative(root, path)
    with folder(root, rel.parent) as dir_fd:
        fd = _open(dir_fd, rel.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, str(rel))
        with os.fdopen(fd, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def open_lock(root: Path, path: Path | str) -> int:
    """A descriptor of the lock file at ``path``, created when missing, never truncated; the caller closes it."""
    rel = relative(root, path)
    with folder(root, rel.parent) as dir_fd:
        return _open(dir_fd, rel.name, os.O_WRONLY | os.O_CREAT, str(rel))


def create(root: Path, path: Path | str, data: bytes) -> bool:
    """Write ``data`` to ``path`` only when nothing is there; True when it did. A link there is refused."""
    rel = relative(root, path)
    with folder(root, rel.parent) as dir_fd:
        try:
            fd = _open(dir_fd, rel.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, str(rel))
        except FileExistsError:
            _refuse_link(dir_fd, rel.name, str(rel))
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True


def _refuse_link(dir_fd: int, name: str, shown: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            raise UnsafePath(shown)


def check(root: Path, path: Path | str) -> None:
    """Refuse ``path`` when it, or a folder between ``root`` and it, is a symlink (parts that do not exist pass)."""
    rel = relative(root, path)
    here = Path(root)
    for depth, part in enumerate(rel.parts, start=1):
        here = here / part
        try:
            mode = here.lstat().st_mode
        except FileNotFoundError:
            return
        except NotADirectoryError:
            raise UnsafePath("/".join(rel.parts[:depth - 1]), "is not a folder") from None
        if stat.S_ISLNK(mode):
            raise UnsafePath("/".join(rel.parts[:depth]))


def check_tree(root: Path, path: Path | str) -> None:
    """:func:`check` ``path``, and refuse any symlink inside it (``runs/`` before a step writes to it)."""
    check(root, path)
    top = Path(root) / relative(root, path)
    for parent, dirs, files in os.walk(top):  # never follows a link: one is refused, not entered
        for name in sorted(dirs + files):
            if os.path.islink(os.path.join(parent, name)):
                raise UnsafePath(relative(root, Path(parent) / name).as_posix())
