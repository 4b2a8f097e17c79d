"""Where the authority to spend comes from (DESIGN.md section 9): the authorized snapshot.

Two modes:

- **GitHub mode** (the action, ``mlr step --forge github``): :func:`read_authorized`
  reads ``program.md`` and the script from git objects in the commit at the tip
  of the remote's default branch (``git fetch``, then ``git ls-tree`` and
  ``git cat-file`` at that commit), never from the work tree. The script must be
  a tracked regular file there (mode 100644 or 100755: no symlink, no submodule,
  no folder) inside the campaign folder, not under ``.git/`` or ``runs/``.
  :func:`stale_reasons` names every way this checkout is not that tip (HEAD is
  another commit, the workflow run is for an older commit, program.md or the
  script edited in the work tree); any reason means the run spends nothing.
- **Local mode** (``--forge none``, no git needed): the work tree's program.md
  is the authority (the person running it owns the machine); the script rules
  that need no git still hold (:func:`mlr_action.core.program_paths.script_path` and the
  work-tree checks of :func:`mlr_action.core.program.load_program`). No snapshot.

Guarantees: a :class:`Snapshot` is data (the commit id, program.md's text,
the script's bytes and the campaign folder of that commit,
:func:`mlr_action.job.shipped.from_commit`); what a step submits in GitHub mode
is that folder, read from git objects, whatever the work tree holds by then. Every refusal names the file, the
commit and the fix. Reading is bounded: program.md by
:data:`~mlr_action.core.program.MAX_PROGRAM_BYTES`, the script by :data:`MAX_SCRIPT_BYTES`.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from mlr_action.github.gitrepo import GitRepo
from mlr_action.github.gitruns import REGULAR_MODES, GitError
from mlr_action.core.program import MAX_PROGRAM_BYTES, Program, ProgramError, parse_program
from mlr_action.core.program_paths import script_path
from mlr_action.job.shipped import ShipError, ShippedFolder, from_commit

MAX_SCRIPT_BYTES = 16 * 1024 * 1024  # a training script is kilobytes; this bounds what a step reads
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_KINDS = {"120000": "a symlink", "160000": "a submodule", "040000": "a folder"}


@dataclass(frozen=True)
class Snapshot:
    """What one step may spend on: program.md and the script as committed at ``commit`` on ``branch``.

    ``text`` is None when that commit has no program.md (onboarding); ``script`` is None when program.md
    does not name a committed regular file (``problems`` says why, and :meth:`load` raises it).
    """

    root: Path  # the campaign folder in the work tree (runs/ is under it)
    branch: str
    commit: str
    program: str = "program.md"  # relative to root, as the user gave it
    text: str | None = None
    script_path: str | None = None  # the script, relative to the folder that holds program.md
    script: bytes | None = None
    problems: tuple[str, ...] = ()
    # The campaign folder at ``commit``: what every job of this step runs in (None until the script is found).
    shipped: ShippedFolder | None = field(default=None, repr=False)
    # ``text`` parsed once by read_authorized, or what parsing it found wrong: every reader of the tick shares it.
    parsed: Program | None = field(default=None, repr=False, compare=False)
    parse_problems: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def where(self) -> str:
        return f"{self.program} at {self.branch} ({self.commit[:12]})"

    @property
    def folder(self) -> Path:
        """The folder that holds program.md: paths in it are relative to this."""
        return (self.root / self.program).parent

    def load(self) -> Program:
        """The authorized program; :class:`ProgramError` with every problem, the script's included."""
        if self.text is None:
            raise ProgramError([f"{self.where} does not exist"], self.where)
        problems = list(self.problems)
        if problems and not self.text:  # the file could not be read as text: nothing to parse
            raise ProgramError(problems, self.where)
        try:
            program = self._parsed()
        except ProgramError as exc:
            raise ProgramError(exc.problems + problems, self.where) from None
        if problems:
            raise ProgramError(problems, self.where)
        return program.model_copy(update={"root": str(self.folder)})

    def _parsed(self) -> Program:
        if self.parsed is not None:
            return self.parsed
        if self.parse_problems:
            raise ProgramError(list(self.parse_problems), self.where)
        return parse_program(self.text or "", root=None, path=self.where)


def read_authorized(root: Path, *, branch: str, program: str = "program.md", remote: str = "origin") -> Snapshot:
    """Fetch ``branch`` and read program.md and its script from the commit at its tip.

    Raises :class:`GitError` (program.md is not a regular file, an object cannot be read, no such branch)
    or :class:`~mlr_action.core.jobs.TransientError` (the remote cannot be reached).
    """
    repo = GitRepo.open(Path(root), remote)
    if repo.git("check-ref-format", "--branch", branch, check=False).returncode != 0:
        raise GitError(f"the default branch name {branch!r} is not a valid branch name")
    tip = repo.fetch(branch)
    if tip is None:
        raise GitError(f"the branch {branch} does not exist on {remote}, so there is no approved program.md to "
                       "read; push it, or run on the repository's default branch")
    snapshot = Snapshot(root=Path(root), branch=branch, commit=tip, program=program)
    folder = campaign_folder(repo, program)
    found = repo.entry(tip, in_folder(folder, posixpath.basename(program)))
    if found is None:
        return snapshot
    mode, oid = found
    if mode not in REGULAR_MODES:
        raise GitError(f"{snapshot.where} is {_KINDS.get(mode, f'mode {mode}')}, not a file: commit program.md "
                       "itself (the approved envelope is the text of that file, never what a link points to)")
    data = _read(repo, oid, MAX_PROGRAM_BYTES, snapshot.where)
    if data is None:
        return _with(snapshot, text="", problems=[f"{snapshot.where} is over the {MAX_PROGRAM_BYTES} bytes a "
                                                  "program.md may be (see program.template.md)"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _with(snapshot, text="", problems=[f"{snapshot.where} is not UTF-8 text (byte {exc.start}: "
                                                  f"{exc.reason}); save it as UTF-8 Markdown"])
    try:  # parsed once for the whole tick (load() and everything after it use this)
        parsed = parse_program(text, root=None, path=snapshot.where)
    except ProgramError as exc:
        return _with(snapshot, text=text, parse_problems=tuple(exc.problems))  # load() raises them
    return _with_script(repo, _with(snapshot, text=text, parsed=parsed), folder, parsed.campaign.script)


def campaign_folder(repo: GitRepo, program: str) -> str:
    """The tree path of the folder that holds ``program`` (given relative to the work tree ``repo`` was opened in).

    Paths in program.md (``script``) are relative to it, and each job runs with it. ``.`` is the top of the
    repository; :class:`GitError` when ``program`` is outside the repository.
    """
    folder = posixpath.normpath(posixpath.join(repo.prefix, posixpath.dirname(program)))
    if program.startswith("/") or folder == ".." or folder.startswith("../"):
        raise GitError(f"{program} is outside the repository; give program.md's path inside it")
    return folder


def in_folder(folder: str, name: str) -> str:
    """The tree path of ``name`` in ``folder`` (``.`` is the top of the repository)."""
    return name if folder == "." else f"{folder}/{name}"


def _with_script(repo: GitRepo, snapshot: Snapshot, folder: str, script: str) -> Snapshot:
    clean, problems = script_path(script)
    if problems:
        return _with(snapshot, problems=problems)
    at = f"{snapshot.branch} ({snapshot.commit[:12]})"
    found = repo.entry(snapshot.commit, in_folder(folder, clean))
    if found is None:
        return _with(snapshot, problems=[
            f"script: {script} is not a file committed at {at}: commit it and merge (a file only in the work tree "
            "is never run, and a path through a symlink or a submodule is not a file of the repository)"])
    mode, oid = found
    if mode not in REGULAR_MODES:
        return _with(snapshot, problems=[
            f"script: {script} is {_KINDS.get(mode, f'mode {mode}')} at {at}, not a regular file: commit the "
            "training script itself at that path"])
    data = _read(repo, oid, MAX_SCRIPT_BYTES, f"script {script} at {at}")
    if data is None:
        return _with(snapshot, problems=[f"script: {script} at {at} is over {MAX_SCRIPT_BYTES} bytes; keep the "
                                         "training script small"])
    try:
        shipped = from_commit(repo.git, snapshot.commit, folder)
    except ShipError as exc:
        return _with(snapshot, script_path=clean, script=data, problems=[str(exc)])
    return _with(snapshot, script_path=clean, script=data, shipped=shipped)


def _read(repo: GitRepo, oid: str, limit: int, what: str) -> bytes | None:
    """The blob's bytes; None when it is over ``limit``; GitError when it cannot be read."""
    try:
        if repo.size(oid) > limit:
            return None
        return repo.blob(oid)
    except GitError as exc:
        raise GitError(f"cannot read {what} from git ({exc}); the checkout's objects are incomplete or damaged: "
                       "re-run the workflow (actions/checkout makes a fresh clone)") from None


def _with(snapshot: Snapshot, **changes) -> Snapshot:
    if "problems" in changes:
        changes["problems"] = tuple(changes["problems"])
    return dataclasses.replace(snapshot, **changes)


def stale_reasons(snapshot: Snapshot, *, sha: str | None = None, remote: str = "origin") -> list[str]:
    """Every way this checkout is not the snapshot's commit; empty means it may spend.

    ``sha`` is the commit the workflow run is for (``GITHUB_SHA``): a re-run of an old run carries the old one.
    Read once, before the step: the bot's own push of runs/ during the step never makes it stale.
    """
    repo = GitRepo.open(snapshot.root, remote)
    tip, reasons = snapshot.commit, []
    head = repo.rev("HEAD")
    run_sha = sha if sha and _SHA.match(sha) else None
    if run_sha and run_sha != tip:
        reasons.append(f"this workflow run is for commit {run_sha[:12]}, not {tip[:12]}, the tip of {snapshot.branch}: "
                       "a re-run of an old workflow run (or one that started before the branch moved) never spends; "
                       "the next scheduled run starts from the tip")
    if head != tip and head != run_sha:
        reasons.append(f"this checkout is at {(head or 'no commit')[:12]}, not at {tip[:12]}, the tip of "
                       f"{snapshot.branch}: a checkout that is behind, ahead (local commits) or elsewhere never "
                       f"spends; check out the tip (actions/checkout without `ref:`, or `git pull`)")
    if snapshot.text:  # ("" when it could not be read: an invalid program, not a stale one)
        reasons += _edited(snapshot, snapshot.root / snapshot.program, snapshot.text.encode("utf-8"), snapshot.program)
    if snapshot.script is not None and snapshot.script_path is not None:
        reasons += _edited(snapshot, snapshot.folder / snapshot.script_path, snapshot.script, snapshot.script_path)
    return reasons


def _edited(snapshot: Snapshot, path: Path, approved: bytes, name: str) -> list[str]:
    try:
        same = not path.is_symlink() and path.read_bytes() == approved
    except OSError:
        same = False
    if same:
        return []
    return [f"{name} in the work tree differs from the one committed at {snapshot.branch} ({snapshot.commit[:12]}): "
            f"what is not merged is not approved; commit it through a pull request, or restore it "
            f"(`git checkout -- {name}`)"]
