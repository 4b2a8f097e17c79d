"""Crash points: every side effect of a step, found from the code, as a place to crash.

A *boundary* is one call that reaches the world: a method of the step's
collaborators (backend, forge, proposer, and the GitHub REST adapter and LLM
client behind them) or a function of ``mlr_action`` that writes a file or runs
a process. :class:`Boundaries` records each one as ``(name, occurrence)`` and
can kill the step just before or just after a chosen one:

- ``mode="raise"`` raises :class:`Crash` (a ``BaseException``, so nothing in
  the step catches it) and then plays dead: every later boundary in the same
  step raises too, so a ``finally`` block cannot write anything either, as
  after a real SIGKILL;
- ``mode="sigkill"`` sends SIGKILL to the current process (used in forked
  children, see ``test_reliability_crash``).

The writers are not listed by hand: :func:`discover_writers` parses every
module of ``mlr_action`` and returns each function or method whose body
writes, replaces, renames or unlinks a file, or starts a subprocess.
:func:`installed` wraps every one of them (in every module that imported it)
for the duration of a block, so a side effect added tomorrow becomes a crash
point without anyone touching the harness.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import os
import pkgutil
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import mlr_action

PACKAGE_DIR = Path(mlr_action.__file__).resolve().parent

# git subcommands that only read: not boundaries (everything else git does is one).
GIT_READ_ONLY = frozenset({
    "rev-parse", "ls-files", "ls-tree", "diff-tree", "cat-file", "symbolic-ref", "merge-base", "config",
    "remote", "check-ref-format", "show", "ls-remote", "log", "status", "diff",
})


class Crash(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the step catches it."""


Target = tuple[str, int, str]  # (boundary name, occurrence, "before" | "after")


@dataclass
class Boundaries:
    """Counts boundary calls and kills the step at ``target``."""

    target: Target | None = None
    mode: str = "raise"  # or "sigkill"
    counts: Counter = field(default_factory=Counter)
    seen: list[tuple[str, int]] = field(default_factory=list)
    fired: bool = False
    dead: bool = False  # after a crash, nothing more of this step reaches the world
    log: Path | None = None  # each boundary crossed is appended here too (survives a SIGKILL)
    countdown: int | None = None  # crash just before the countdown-th boundary of this step (then None)

    def new_process(self) -> None:
        """The next step runs in a fresh process: alive again (counts go on across the campaign)."""
        self.dead = False

    def _kill(self, where: str) -> None:
        self.fired = self.dead = True
        if self.mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise Crash(where)

    def before(self, name: str) -> int:
        if self.dead:
            raise Crash(f"dead before {name}")
        self.counts[name] += 1
        n = self.counts[name]
        self.seen.append((name, n))
        if self.log is not None:
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{name}\n".encode())
            finally:
                os.close(fd)
        if not self.fired and self.target == (name, n, "before"):
            self._kill(f"before {name}#{n}")
        if self.countdown is not None:
            self.countdown -= 1
            if self.countdown <= 0:
                self.countdown = None
                self.fired = self.dead = True
                raise Crash(f"before {name}#{n} (countdown)")
        return n

    def after(self, name: str, n: int) -> None:
        if not self.fired and self.target == (name, n, "after"):
            self._kill(f"after {name}#{n}")

    def call(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        n = self.before(name)
        out = fn(*args, **kwargs)
        if _is_context_manager(out):
            return _AfterEnter(out, lambda: self.after(name, n))
        self.after(name, n)
        return out

    # -- what was recorded ---------------------------------------------------

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.seen}

    def targets(self, *, names: set[str] | None = None, first_only: bool = False) -> list[Target]:
        """A crash point for every distinct state of the world a crash can leave: just before the first
        boundary, and just after each one.

        Crashing just *before* boundary k leaves the world as crashing just *after* boundary k-1 does:
        between the two the step only computes and reads (every write is a boundary, which
        ``test_the_boundaries_cover_every_side_effect_in_the_code`` enforces), so "before" is only needed
        for the first. ``names``: only these boundaries; ``first_only``: only their first occurrence.
        """
        out: list[Target] = []
        for name, n in self.seen:
            if (names is not None and name not in names) or (first_only and n > 1):
                continue
            out.append((name, n, "after"))
        if self.seen and names is None:
            out.insert(0, (*self.seen[0], "before"))
        return out


def _is_context_manager(value: Any) -> bool:
    # Paths are context managers before Python 3.13 (a deprecated no-op): a returned path is a value.
    return hasattr(type(value), "__enter__") and hasattr(type(value), "__exit__") and not isinstance(value, os.PathLike)


class _AfterEnter:
    """A context manager returned by a boundary: "after" means after it was entered (the lock taken)."""

    def __init__(self, inner: Any, after: Callable[[], None]) -> None:
        self.inner, self._after = inner, after

    def __enter__(self) -> Any:
        value = self.inner.__enter__()
        try:
            self._after()
        except BaseException:
            self.inner.__exit__(*sys.exc_info())
            raise
        return value

    def __exit__(self, *exc: Any) -> Any:
        return self.inner.__exit__(*exc)


class Proxy:
    """Every public method of ``inner`` is a boundary named ``<prefix>.<method>``."""

    def __init__(self, inner: Any, prefix: str, bounds: Boundaries, *, skip: frozenset[str] = frozenset()) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_bounds", bounds)
        object.__setattr__(self, "_skip", skip)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or name in self._skip or not callable(attr) or isinstance(attr, type):
            return attr
        return functools.partial(self._bounds.call, f"{self._prefix}.{name}", attr)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)


# --- the writers, found in the source -------------------------------------------------

_PATH_WRITES = {"write_text", "write_bytes", "unlink", "rmdir", "touch", "rename", "symlink_to", "hardlink_to"}
_MODULE_WRITES = {
    "os": {"replace", "rename", "remove", "unlink", "truncate", "ftruncate", "write", "makedirs"},
    "shutil": {"rmtree", "move", "copy", "copy2", "copyfile", "copytree"},
    "tempfile": {"mkstemp", "NamedTemporaryFile"},
    "subprocess": {"run", "Popen", "call", "check_call", "check_output"},
    # mlr_action.core.safepath: the bot's writes that never follow a link; whoever calls one is a writer.
    "safepath": {"replace", "append", "create", "open_lock", "make_dirs"},
}
_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}


@dataclass(frozen=True)
class Writer:
    module: str  # mlr_action.core.ledger
    qualname: str  # append_rows, or GitRepo.git
    line: int
    why: str  # the call that makes it a writer

    @property
    def name(self) -> str:
        return f"{self.module.removeprefix('mlr_action.')}.{self.qualname}"


def _mode(call: ast.Call, position: int) -> str | None:
    node = call.args[position] if len(call.args) > position else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _writes(call: ast.Call) -> str | None:
    """Why ``call`` writes to the file system or starts a process, or None."""
    func = call.func
    if isinstance(func, ast.Name) and func.id == "open":
        mode = _mode(call, 1)
        return f"open(mode={mode!r})" if mode and set(mode) & set("wax+") else None
    if not isinstance(func, ast.Attribute):
        return None
    owner = func.value.id if isinstance(func.value, ast.Name) else None
    if owner == "os" and func.attr == "open":
        flags = {n.attr for n in ast.walk(call.args[1]) if isinstance(n, ast.Attribute)} if len(call.args) > 1 else set()
        return "os.open(" + "|".join(sorted(flags & _WRITE_FLAGS)) + ")" if flags & _WRITE_FLAGS else None
    if owner == "os" and func.attr == "fdopen":
        mode = _mode(call, 1)
        return f"os.fdopen(mode={mode!r})" if mode and set(mode) & set("wax+") else None
    if owner in _MODULE_WRITES and func.attr in _MODULE_WRITES[owner]:
        return f"{owner}.{func.attr}"
    if owner not in _MODULE_WRITES and func.attr in _PATH_WRITES:
        return f".{func.attr}()"
    if func.attr == "replace" and len(call.args) == 1 and not call.keywords:  # Path.replace(target); str.replace has two
        return ".replace(target)"
    return None


def discover_writers(package_dir: Path = PACKAGE_DIR) -> list[Writer]:
    """Every function and method of the package whose own body writes (nested functions count for their owner)."""
    return list(_discover(package_dir))


@functools.cache
def _discover(package_dir: Path) -> tuple[Writer, ...]:
    found: list[Writer] = []
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defs: list[tuple[str, ast.AST]] = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                defs.append((node.name, node))
            elif isinstance(node, ast.ClassDef):
                defs += [(f"{node.name}.{n.name}", n) for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for qualname, node in defs:
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                why = _writes(call)
                if why:
                    found.append(Writer(module, qualname, node.lineno, why))  # type: ignore[attr-defined]
                    break
    return tuple(found)


# --- wrapping them -----------------------------------------------------------------------


@functools.cache
def import_all() -> tuple[str, ...]:
    """Import every module of the package (not ``__main__``s), so every from-import can be found and patched."""
    names = []
    for info in pkgutil.walk_packages(mlr_action.__path__, "mlr_action."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        importlib.import_module(info.name)
        names.append(info.name)
    return tuple(names)


def _git_wrapper(bounds: Boundaries, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def git(self: Any, *args: str, **kwargs: Any) -> Any:
        if args and args[0] in GIT_READ_ONLY:
            return original(self, *args, **kwargs)
        return bounds.call(f"github.gitrepo.GitRepo.git:{args[0] if args else ''}", original, self, *args, **kwargs)

    return git


@contextlib.contextmanager
def installed(bounds: Boundaries, writers: list[Writer] | None = None) -> Iterator[list[Writer]]:
    """Every writer is a boundary inside this block (module functions in every module holding them, and methods)."""
    import_all()
    writers = discover_writers() if writers is None else writers
    undo: list[tuple[Any, str, Any]] = []
    modules = [m for n, m in list(sys.modules.items()) if n == "mlr_action" or n.startswith("mlr_action.")]
    try:
        for w in writers:
            module = sys.modules[w.module]
            if "." in w.qualname:
                cls_name, meth = w.qualname.split(".", 1)
                cls = getattr(module, cls_name)
                raw = cls.__dict__[meth]
                if w.qualname == "GitRepo.git":
                    new: Any = _git_wrapper(bounds, raw)
                elif isinstance(raw, (classmethod, staticmethod)):
                    new = type(raw)(_wrapped(bounds, w.name, raw.__func__))
                else:
                    new = _wrapped(bounds, w.name, raw)
                undo.append((cls, meth, raw))
                setattr(cls, meth, new)
                continue
            original = getattr(module, w.qualname)
            new = _wrapped(bounds, w.name, original)
            for mod in modules:
                for attr, value in list(vars(mod).items()):
                    if value is original:
                        undo.append((mod, attr, value))
                        setattr(mod, attr, new)
        yield writers
    finally:
        for owner, attr, value in reversed(undo):
            setattr(owner, attr, value)


def _wrapped(bounds: Boundaries, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def boundary(*args: Any, **kwargs: Any) -> Any:
        return bounds.call(name, fn, *args, **kwargs)

    return boundary


# --- the methods the step calls on its collaborators ---------------------------------------


def step_calls() -> dict[str, set[str]]:
    """``{"backend": {...}, "forge": {...}, "proposer": {...}}``: the methods the step calls on each collaborator.

    Read from the source of every module the Step class is made of (step.py and its mixins):
    ``self.backend.submit(...)`` and ``getattr(self.backend, "delete_repo", None)``.
    """
    import inspect

    from mlr_action.shell.step import Step

    sources = sorted({inspect.getsourcefile(c) for c in Step.__mro__ if c.__module__.startswith("mlr_action.")})
    trees = [ast.parse(Path(s).read_text(encoding="utf-8")) for s in sources if s]
    calls: dict[str, set[str]] = {"backend": set(), "forge": set(), "proposer": set()}
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name) and owner.value.id == "self" \
                    and owner.attr in calls:
                calls[owner.attr].add(node.func.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2:
            owner, name = node.args[0], node.args[1]
            if isinstance(owner, ast.Attribute) and owner.attr in calls and isinstance(name, ast.Constant):
                calls[owner.attr].add(str(name.value))
    return calls
