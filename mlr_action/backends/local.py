"""The local backend: each job is a detached subprocess of this machine's Python.

Guarantees (besides those of :mod:`mlr_action.core.jobs`):

- ``submit`` returns as soon as the job's supervisor has detached: a step
  never waits for a job, and the job survives the step dying, even by SIGKILL
  of its whole process group. The job runs in a fresh folder
  (``.mlr/jobs/<job_id>/work``) holding the spec's shipped folder
  (:mod:`mlr_action.job.shipped`: in GitHub mode the authorized commit's files,
  read from git objects; in a local step the folder as committed at
  ``HEAD``, or the files on disk outside git, :mod:`mlr_action.job.committed`),
  never in the work tree, so a file or import that is not committed fails
  here as it would on HF, and an untracked file (a ``.env``) never reaches a job. It runs ``uv run``
  with the same recipe as an HF job (:mod:`mlr_action.job.runner`) when ``uv`` is
  on PATH; otherwise the current Python, and :attr:`LocalBackend.runner_note`
  says that the folder's dependencies were not installed. ``os.environ`` plus
  the spec's env; stdout and stderr merged into one log.
- Exactly once: the registry entry (``<root>/.mlr/jobs/<job_id>/spec.json``,
  labels included) appears atomically *before* anything starts, and submit is
  idempotent by the ``mlr-campaign`` and ``mlr-iter`` labels, so a step that
  crashed after submitting finds its job with ``list_jobs`` instead of running
  it twice.
- No job stays RUNNING forever: an entry whose supervisor never started, or
  died without recording a result, is reported (and recorded, once) as ERROR
  with a message saying so, and whatever is left of the job is killed.
- Exit code 0 is COMPLETED, anything else ERROR with the code in the message;
  running past ``timeout_s`` kills the job's process group and is ERROR
  ("timed out after ..."); ``cancel`` kills it and is CANCELED.
- ``<root>/.mlr/`` carries a ``.gitignore`` of ``*``, so nothing under it is
  ever committed. Nothing under it is read or written through a symlink: a
  linked ``.mlr``, ``.mlr/jobs`` or registry file is refused
  (:class:`~mlr_action.core.safepath.UnsafePath`), and a job entry that is a link
  is not one of ours (never listed, inspected, canceled or written).
POSIX only; see :mod:`mlr_action.backends._supervise` for the job directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from mlr_action.job import runner
from mlr_action.core import safepath
from mlr_action.backends import _supervise as sup
from mlr_action.backends._common import job_env, job_folder, job_key, job_labels
from mlr_action.core.jobs import (
    CAMPAIGN_LABEL,
    JobSpec,
    JobStage,
    JobView,
    PermanentError,
    TransientError,
)
from mlr_action.job.shipped import ShippedFolder

LOG_TAIL_BYTES = 1_000_000  # logs() returns at most this much: the end is where the metric is
START_GRACE_S = 60.0  # how long an entry may wait for its supervisor before it counts as never started
LAUNCH_WAIT_S = 30.0  # the launcher only forks and exits; this is a safety net, not a wait for the job
_JOB_ID = re.compile(r"^local-[0-9a-f]{12}$")


class LocalBackend:
    name = "local"

    def __init__(self, root: Path, *, python: str = sys.executable, uv: str | None = "auto") -> None:
        """``uv``: the uv to run jobs with; "auto" finds it on PATH; None always runs ``python`` itself."""
        self.root = Path(root).resolve()
        self.python = python
        self.uv = shutil.which("uv") if uv == "auto" else uv
        self.registry = self.root / ".mlr" / "jobs"

    @property
    def runner(self) -> str:
        """What runs the jobs, for the ledger: ``uv`` or ``python X.Y.Z (no uv)``."""
        return "uv" if self.uv else f"python {_version(self.python)} (no uv)"

    @property
    def runner_note(self) -> str | None:
        """Why local results may not predict HF's, when they may not; None when uv runs the jobs."""
        if self.uv:
            return None
        return (f"local jobs run with {self.python} (Python {_version(self.python)}), not uv (not installed, or "
                "--no-uv), so the dependencies the campaign folder declares are not installed as on HF; with uv "
                "(https://docs.astral.sh/uv/) local runs resolve them the same way")

    # -- JobBackend ----------------------------------------------------------

    def submit(self, *, spec: JobSpec) -> str:
        if spec.folder is None and not Path(spec.script).is_absolute():  # a script alone, relative to the root
            spec = spec.model_copy(update={"script": str(self.root / spec.script)})
        folder, script, plan = job_folder(spec)
        labels = job_labels(spec)
        if self.uv:
            command = runner.uv_command(plan, script, list(spec.args), uv=self.uv)
        else:
            command = [self.python, script, *spec.args]
        with self._registry_lock():
            existing = self._find(labels)
            if existing:
                return existing
            jobdir = self._register(spec, labels, folder, command)
        self._launch(jobdir)
        return jobdir.name

    def inspect(self, *, job_id: str) -> JobView:
        jobdir = self._jobdir(job_id)
        record = sup.read_json(jobdir / sup.SPEC_FILE) if jobdir else None
        if jobdir is None or record is None:
            return JobView(job_id=job_id, stage=JobStage.DELETED, message=f"no such job in {self.registry}")
        return self._view(jobdir, record, self._reconcile(jobdir, record))

    def list_jobs(self, *, campaign: str) -> list[JobView]:
        views = [
            self._view(jobdir, record, self._reconcile(jobdir, record))
            for jobdir, record in self._entries()
            if record.get("labels", {}).get(CAMPAIGN_LABEL) == campaign
        ]
        return sorted(views, key=lambda v: (v.iter if v.iter is not None else -1, v.job_id))

    def logs(self, *, job_id: str) -> str:
        jobdir = self._jobdir(job_id)
        if jobdir is None:
            return ""
        return _tail(jobdir / sup.OUTPUT_FILE, LOG_TAIL_BYTES)

    def cancel(self, *, job_id: str) -> None:
        """Kill a live job and record CANCELED; a finished or unknown job is left as it is."""
        jobdir = self._jobdir(job_id)
        if jobdir is None or not (jobdir / sup.SPEC_FILE).exists():
            return
        with sup.job_lock(jobdir):
            status = sup.read_status(jobdir)
            if sup.is_terminal(status):
                return
            self._kill_job(status)
            sup.write_json(jobdir / sup.STATUS_FILE,
                           {**status, "stage": "CANCELED", "finished_at": time.time(), "message": "canceled"})

    def prices(self) -> dict[str, float] | None:
        return None

    # -- submit --------------------------------------------------------------

    def _find(self, labels: dict[str, str]) -> str | None:
        key = job_key(labels)
        return next((d.name for d, record in self._entries() if job_key(record.get("labels", {})) == key), None)

    def _register(self, spec: JobSpec, labels: dict[str, str], folder: ShippedFolder, command: list[str]) -> Path:
        """Write the whole entry (the job's folder included) under a hidden name, then rename it into place: it
        appears at once or not at all."""
        job_id = f"local-{uuid.uuid4().hex[:12]}"
        tmp = self.registry / f".tmp-{job_id}"
        tmp.mkdir(parents=True)
        jobdir = self.registry / job_id
        try:
            folder.materialize(tmp / sup.WORK_DIR)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        sup.write_json(tmp / sup.SPEC_FILE, {
            "job_id": job_id,
            "submitted_at": time.time(),
            "labels": labels,
            "command": command,
            "cwd": str(jobdir / sup.WORK_DIR),
            "args": list(spec.args),
            "env": job_env(spec),
            "timeout_s": spec.timeout_s,
            "runner": self.runner,
            "spec": spec.model_dump(exclude={"script_bytes"}),
        })
        os.rename(tmp, jobdir)
        return jobdir

    def _launch(self, jobdir: Path) -> None:
        """Start the supervisor; it forks away at once, so this waits milliseconds, not for the job."""
        # -I -S: the supervisor is stdlib-only, so skip site-packages and save most of its startup
        command = [sys.executable, "-I", "-S", str(Path(sup.__file__).resolve()), str(jobdir)]
        try:
            with os.fdopen(os.open(jobdir / sup.SUPERVISOR_LOG, sup.APPEND, 0o644), "ab") as log:
                launcher = subprocess.Popen(command, cwd=self.root, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        except OSError as exc:
            shutil.rmtree(jobdir, ignore_errors=True)  # nothing started: forget the entry, the next tick retries
            raise TransientError(f"could not start the local job supervisor ({exc}); the next step retries") from exc
        with contextlib.suppress(subprocess.TimeoutExpired):
            if launcher.wait(timeout=LAUNCH_WAIT_S) != 0:
                log_text = _tail(jobdir / sup.SUPERVISOR_LOG, 2000)
                shutil.rmtree(jobdir, ignore_errors=True)
                raise PermanentError(f"the local job supervisor failed to start:\n{log_text}")

    # -- inspect -------------------------------------------------------------

    def _reconcile(self, jobdir: Path, record: dict[str, Any]) -> dict[str, Any]:
        """The job's status, after recording ERROR (once) if its supervisor is gone."""
        status = sup.read_status(jobdir)
        if sup.is_terminal(status) or _stale_reason(jobdir, record, status) is None:
            return status
        with sup.job_lock(jobdir):  # re-check: the supervisor may have finished in between
            status = sup.read_status(jobdir)
            reason = None if sup.is_terminal(status) else _stale_reason(jobdir, record, status)
            if reason is None:
                return status
            self._kill_job(status)
            status = {**status, "stage": "ERROR", "finished_at": time.time(), "message": reason}
            sup.write_json(jobdir / sup.STATUS_FILE, status)
            return status

    @staticmethod
    def _kill_job(status: dict[str, Any]) -> None:
        """Kill the job's process group, if the recorded pid is still the job (not a recycled pid)."""
        if sup.process_alive(status.get("pid"), status.get("pid_token")):
            sup.kill_group(status["pid"])

    def _view(self, jobdir: Path, record: dict[str, Any], status: dict[str, Any]) -> JobView:
        started, finished = status.get("started_at"), status.get("finished_at")
        duration = None if started is None else max(0.0, (finished or time.time()) - started)
        return JobView(
            job_id=jobdir.name,
            stage=JobStage(status.get("stage", "SCHEDULING")),
            labels=dict(record.get("labels", {})),
            duration_s=duration,
            message=status.get("message"),
            url=(jobdir / sup.OUTPUT_FILE).as_uri(),
            args=[str(a) for a in record.get("args") or []],
            flavor=(record.get("spec") or {}).get("flavor"),
            timeout_s=record.get("timeout_s"),
        )

    # -- registry ------------------------------------------------------------

    def _jobdir(self, job_id: str) -> Path | None:
        """The directory of ``job_id``; None for anything that is not one of our ids or not our folder (a link)."""
        if not _JOB_ID.match(job_id):
            return None
        safepath.check(self.root, self.registry)
        jobdir = self.registry / job_id
        return None if jobdir.is_symlink() else jobdir

    def _entries(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        safepath.check(self.root, self.registry)  # a linked .mlr or .mlr/jobs is refused, never read or written
        if not self.registry.is_dir():
            return
        for jobdir in sorted(self.registry.iterdir()):
            # An entry is a folder submit made; a link (committed, or left by a job) is not one of ours.
            ours = _JOB_ID.match(jobdir.name) and not jobdir.is_symlink()
            record = sup.read_json(jobdir / sup.SPEC_FILE) if ours else None
            if record is not None:
                yield jobdir, record

    @contextlib.contextmanager
    def _registry_lock(self) -> Iterator[None]:
        """Serialize submits, so two concurrent steps cannot register the same iter twice."""
        safepath.make_dirs(self.root, self.registry)
        safepath.create(self.root, self.registry.parent / ".gitignore", b"*\n")
        safepath.check(self.root, self.registry / sup.LOCK_FILE)
        with sup.job_lock(self.registry):
            yield


def _stale_reason(jobdir: Path, record: dict[str, Any], status: dict[str, Any]) -> str | None:
    """Why a job that is not finished can never finish, or None while it still can."""
    if status.get("supervisor_pid"):
        if sup.process_alive(status["supervisor_pid"], status.get("supervisor_token")):
            return None
        return (f"the job's supervisor (pid {status['supervisor_pid']}) died without recording a result "
                "(machine restart, or it was killed); the job was stopped and its result is lost")
    launch = sup.read_json(jobdir / sup.LAUNCH_FILE)
    if launch:
        if sup.process_alive(launch.get("pid"), launch.get("token")):
            return None
        return (f"the job's supervisor (pid {launch.get('pid')}) exited before starting the job; "
                f"see {jobdir / sup.SUPERVISOR_LOG}")
    if time.time() - float(record.get("submitted_at", 0)) < START_GRACE_S:
        return None
    return ("the job was registered but never started (the submitting process probably died before "
            "launching it); it will not run")


def _version(python: str) -> str:
    """The version of the interpreter at ``python`` (this one's without asking when it is this one)."""
    if python == sys.executable:
        return ".".join(map(str, sys.version_info[:3]))
    try:
        done = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def _tail(path: Path, limit: int) -> str:
    """The last ``limit`` bytes of ``path`` as text, starting at a line boundary; "" if missing."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return ""
    if size > limit:
        data = data[data.find(b"\n") + 1:] if b"\n" in data else data
    return data.decode("utf-8", errors="replace")
