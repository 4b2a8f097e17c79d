"""``mlr reproduce ITER``: the exact job of one experiment, printed, and with ``--run`` run again here.

Guarantees:

- The job is rebuilt from the experiment's own row, a search row or a final evaluation's repeat (then with the
  final block's ``fixed`` and that repeat's seed, as the step ran it: :func:`mlr_action.job.jobspec.args_of`): its
  config, and the commit it ran (the campaign folder and program.md are read from git objects at that commit,
  never from the work tree). A row without a commit (a local run) is rebuilt from what a local step ships now
  (:func:`mlr_action.job.committed.local_snapshot`: HEAD's folder in git, else the files on disk), and says so.
- The row is data anyone with push access can write (DESIGN.md section 9): its ``commit`` must be a full
  object name, and ``--run`` runs it only when it is on the default branch
  (:mod:`mlr_action.commands.reproduce_trust`); otherwise nothing runs and the text says how to proceed by hand.
- The folder's code digest is recomputed and compared with the row's ``folder_hash``. It is called
  ``verified`` only when recomputed from the commit's git objects; a mismatch is a problem (with ``--run``
  nothing runs).
- ``--run`` copies the folder to a fresh folder and runs the same command a
  local job runs (uv when installed, else this Python, as the step does), with
  the same ``MLR_*`` environment, and says whether the metric it printed is
  the one the ledger recorded. It spends nothing on any backend.
- Everything shown from the row is redacted; the row is data, never a path
  (the folder is the campaign's, whatever the row says).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mlr_action.job.committed import local_snapshot
from mlr_action.core.ledger import LEDGER_PATH, read_ledger
from mlr_action.core.metric import read_metric
from mlr_action.core.program import ProgramError, load_program, parse_program
from mlr_action.core.program_paths import output_repo_for, script_path
from mlr_action.job.receives import command_line
from mlr_action.core.redaction import redact
from mlr_action.commands.reproduce_trust import commit_problem, unmerged_reason
from mlr_action.job.runner import recipe
from mlr_action.job.shipped import ShipError, ShippedFolder, from_commit
from mlr_action.core.state import fold


@dataclass
class Reproduction:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    folder: ShippedFolder | None = None
    script: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    recipe: object = None
    metric: str = ""
    recorded: float | None = None
    untrusted: str | None = None  # why ``--run`` must not run the row's commit (not merged code)


def plan(root: Path, program_path: Path, iteration: int) -> Reproduction:
    """What experiment ``iteration`` ran, rebuilt from its row; ``problems`` say why it cannot be."""
    from mlr_action.job.jobspec import args_of, campaign_id_for

    rep = Reproduction()
    state = fold(read_ledger(root / LEDGER_PATH))
    exp = state.row(iteration)  # a search row or a final evaluation's repeat
    if exp is None:
        known = sorted({*state.experiments, *state.finals})
        rep.problems.append(f"there is no iter {iteration} in {LEDGER_PATH}"
                            + (f" (it has iters {known[0]}–{known[-1]})" if known else " (it has no experiment yet)"))
        return rep
    try:
        program, folder, where = _sources(root, program_path, exp.commit, rep)
    except (ProgramError, ShipError, _Unreadable) as exc:
        rep.problems.append(redact(str(exc)))
        return rep
    final = exp.final_of is not None
    rep.folder, rep.recorded = folder, exp.metric
    rep.metric = program.final_metric if final else program.campaign.metric
    rep.script = script_path(program.campaign.script)[0] or program.campaign.script
    rep.recipe = recipe(folder, rep.script, program.campaign)
    rep.args = args_of(program, exp)
    campaign = campaign_id_for(program, root)
    rep.env = {"MLR_CAMPAIGN": campaign, "MLR_ITER": str(exp.iter),
               "MLR_OUTPUT_REPO": output_repo_for(program.envelope, campaign, exp.iter)}
    result = f"{rep.metric}={exp.metric:g}" if exp.metric is not None else "no metric"
    what = f" (final evaluation of iter {exp.final_of}, repeat {exp.repeat})" if final else ""
    decision = f" ({exp.decision})" if exp.decision else ""
    rep.lines.append(redact(f"iter {exp.iter}{what}: {exp.status}, {result}{decision}, "
                            f"job {exp.job_id or '-'} on {exp.flavor or '-'}"))
    rep.lines.append(f"code      {where}; {_compared(folder, exp.folder_hash, program_path.name, rep)}")
    if rep.untrusted:
        rep.lines.append(f"trust     {rep.untrusted}")
    rep.lines.append(f"command   {command_line(rep.recipe, rep.script, rep.args)}")
    rep.lines.append("env       " + " ".join(f"{k}={shlex.quote(v)}" for k, v in rep.env.items()))
    if getattr(exp, "runner", None):
        rep.lines.append(redact(f"ran with  {exp.runner}"))
    rep.lines.append(f"again     mlr reproduce {exp.iter} --run   (a fresh copy of that folder, the same command)")
    return rep


class _Unreadable(Exception):
    pass


def _sources(root: Path, program_path: Path, commit: str | None,
             rep: Reproduction) -> tuple[object, ShippedFolder, str]:
    """(program, folder, where they come from): the commit's when the row has one, else the work tree's."""
    if not commit:  # a local run: the folder a local step ships now (HEAD's in git), which the digest checks
        program = load_program(program_path)
        folder = local_snapshot(program_path.parent)
        where = f"{folder.source} at HEAD" if folder.commit else "the work tree"
        return program, folder, f"{where} (the row records no commit: a local run)"
    problem = commit_problem(commit)
    if problem:
        raise _Unreadable(problem)
    from mlr_action.shell.authority import campaign_folder, in_folder
    from mlr_action.core.jobs import BackendError
    from mlr_action.github.gitrepo import GitRepo

    try:
        repo = GitRepo.open(root, "origin")
        if repo.rev(commit) is None:
            raise _Unreadable(f"commit {commit[:12]}, which the experiment ran, is not in this clone: fetch it "
                              "(`git fetch --unshallow`, or `git fetch origin` on a branch that holds it)")
        rep.untrusted = unmerged_reason(repo, commit)
        folder_path = campaign_folder(repo, os.path.relpath(program_path.resolve(), root.resolve()))
        shown = repo.git("show", f"{commit}:{in_folder(folder_path, program_path.name)}", check=False)
        if shown.returncode != 0:
            raise _Unreadable(f"commit {commit[:12]} has no {program_path.name} in {folder_path}")
        program = parse_program(shown.stdout.decode("utf-8", "replace"), root=None, path=f"{commit[:12]}:program.md")
        folder = from_commit(repo.git, commit, folder_path)
    except BackendError as exc:
        raise _Unreadable(str(exc)) from None
    return program, folder, f"commit {commit[:12]} ({folder_path} as committed there)"


def _compared(folder: ShippedFolder, recorded: str | None, program_name: str, rep: Reproduction) -> str:
    """The folder's digest, recomputed here, against the one the row recorded (the row is data: "verified" only
    when the digest was recomputed from git objects; rows before program.md was left out recorded the whole
    folder's digest, which is accepted too)."""
    digest = folder.code_digest(program_name)
    if not recorded:
        return f"folder {digest[:12]} (recomputed; the row records no folder digest to compare with)"
    if recorded in (digest, folder.digest):
        if folder.commit:
            return f"folder {digest[:12]}, verified: recomputed from the commit's git objects, it matches the row's"
        return f"folder {digest[:12]}: recomputed from {folder.source}, it matches the digest the row recorded"
    rep.problems.append(f"the folder is {digest[:12]} but the row recorded {str(recorded)[:12]}: the files "
                        "changed since (a local run's work tree was edited), so this would not be the same job")
    return f"folder {digest[:12]}, NOT the {str(recorded)[:12]} the row recorded"


def run(rep: Reproduction, *, into: Path | None = None, uv: str | None = "auto") -> int:
    """Copy the folder to ``into`` (a fresh folder) and run the job there; the script's exit code."""
    assert rep.folder is not None
    where = Path(into) if into else Path(tempfile.mkdtemp(prefix="mlr-reproduce-"))
    if where.exists() and any(where.iterdir()):
        print(f"mlr: {where} is not empty; give --into a new or empty folder", file=sys.stderr)
        return 2
    rep.folder.materialize(where)
    uv_path = shutil.which("uv") if uv == "auto" else uv
    from mlr_action.job.runner import uv_command

    command = uv_command(rep.recipe, rep.script, rep.args, uv=uv_path) if uv_path else \
        [sys.executable, rep.script, *rep.args]
    if not uv_path:
        print(f"note: uv is not installed: running with {sys.executable}, without installing the folder's dependencies")
    print(f"running in {where}: {' '.join(shlex.quote(w) for w in command)}", flush=True)
    proc = subprocess.Popen(command, cwd=where, env={**os.environ, **rep.env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    output = []
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace")
        output.append(line)
        sys.stdout.write(redact(line))
    code = proc.wait()
    value = read_metric("".join(output), rep.metric).value
    recorded = "no metric" if rep.recorded is None else f"{rep.recorded:g}"
    got = "no metric line" if value is None else f"{rep.metric}={value:g}"
    print(f"reproduced: {got} (the ledger recorded {recorded}); exit code {code}")
    return code
