"""The supervisor of one local job: starts it, enforces its timeout, records how it ended.

:class:`~mlr_action.backends.local.LocalBackend` runs ``python _supervise.py <jobdir>``
and this module is also imported by it for the shared file helpers.

Guarantees:

- The supervisor detaches (double fork + ``setsid``): the launching step gets
  control back at once, and neither its exit nor a SIGKILL of its process group
  reaches the job.
- The job runs in a process group of its own. On timeout, cancel or exit the
  whole group is killed, so nothing the job spawned outlives it.
- ``status.json`` is only ever replaced whole (tmp file + ``os.replace``) and
  only under the job's lock; once it holds a terminal stage nobody rewrites it.
  No file of a job directory is opened through a symlink (``O_NOFOLLOW``).
  A dead supervisor leaves the lock free (``flock`` dies with its holder), so
  the backend can find and finalize a job whose supervisor died.
- Standard library only: it runs by path, so the job works whatever the
  interpreter has installed, and it is cheap to start.

Files in a job directory::

    spec.json       written by submit before anything starts; read-only here
    launch.json     pid of the supervisor, written by the launcher as it exits
    status.json     stage, started_at, finished_at, returncode, message, pids
    output.log      the job's stdout and stderr, merged
    supervisor.log  the supervisor's own stderr (empty unless it crashed)
    lock            flock(2) target that serializes status changes
    work/           the job's folder: the shipped campaign folder, its working directory

POSIX only (fork, setsid, process groups, flock).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

SPEC_FILE = "spec.json"
LAUNCH_FILE = "launch.json"
STATUS_FILE = "status.json"
OUTPUT_FILE = "output.log"
SUPERVISOR_LOG = "supervisor.log"
LOCK_FILE = "lock"
WORK_DIR = "work"

TERMINAL = frozenset({"COMPLETED", "ERROR", "CANCELED", "DELETED"})
KILL_GRACE_S = 10.0  # between SIGTERM and SIGKILL on timeout: time for the job to flush its logs
_HAS_PROC = os.path.exists("/proc/self/stat")
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC  # no file of a job directory is ever opened through a link
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW  # a log: created when missing, a link refused (ELOOP)


# -- files -------------------------------------------------------------------


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` whole: readers see the old content or the new, never a mix.

    The temporary file is created fresh (``O_EXCL | O_NOFOLLOW``): a link left at its name is removed, never
    written through, and ``os.replace`` swaps the file in without following a link at ``path``.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = _create(tmp)
    except FileExistsError:  # left by a dead process with the same pid, or planted: remove the name, not its target
        os.unlink(tmp)
        fd = _create(tmp)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _create(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)



def read_json(path: Path) -> dict[str, Any] | None:
    """The object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_status(jobdir: Path) -> dict[str, Any]:
    return read_json(jobdir / STATUS_FILE) or {}


def is_terminal(status: dict[str, Any]) -> bool:
    return status.get("stage") in TERMINAL


@contextlib.contextmanager
def job_lock(jobdir: Path) -> Iterator[None]:
    """Hold the job's lock; every status change happens inside it."""
    fd = os.open(jobdir / LOCK_FILE, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


# -- processes ---------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_token(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux), so a recycled pid is not taken for ours."""
    fields = _proc_stat(pid) if _HAS_PROC else None
    return fields[19] if fields else None


def process_alive(pid: int | None, token: str | None = None) -> bool:
    """Whether ``pid`` still runs and, where the kernel tells, is the process we started."""
    if not pid:
        return False
    if _HAS_PROC:
        fields = _proc_stat(pid)
        if fields is None or fields[0] in ("Z", "X"):  # zombies count as dead
            return False
        return token is None or fields[19] == token
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a whole process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def format_duration(seconds: float) -> str:
    """``120`` -> ``2m``. A copy of mlr_action.core.durations.format_duration: this module stays stdlib-only."""
    seconds = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


# -- supervising -------------------------------------------------------------


class Terminated(BaseException):
    """The supervisor itself got SIGTERM/SIGHUP (shutdown, logout)."""


def _on_signal(signum: int, _frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


def detach(jobdir: Path) -> None:
    """Fork; the parent records the child's pid and exits, the child leads a new session."""
    pid = os.fork()
    if pid > 0:
        with contextlib.suppress(OSError):
            write_json(jobdir / LAUNCH_FILE, {"pid": pid, "token": process_token(pid)})
        os._exit(0)
    os.setsid()


def start(jobdir: Path, spec: dict[str, Any]) -> subprocess.Popen[bytes] | None:
    """Start the job and record RUNNING, unless it was canceled before it could start."""
    with job_lock(jobdir):
        if is_terminal(read_status(jobdir)):
            return None
        env = {**os.environ, **spec["env"]}
        # An entry written before the job got its own folder names the python and the script instead.
        command = spec.get("command") or [spec["python"], spec["script"], *spec["args"]]
        try:
            with os.fdopen(os.open(jobdir / OUTPUT_FILE, APPEND, 0o644), "ab") as out:
                child = subprocess.Popen(command, cwd=spec["cwd"], env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            message = f"could not start the job ({' '.join(command[:2])}): {exc}"
            write_json(jobdir / STATUS_FILE, final_status({}, returncode=None, message=message))
            return None
        write_json(jobdir / STATUS_FILE, {
            "stage": "RUNNING",
            "started_at": time.time(),
            "pid": child.pid,
            "pid_token": process_token(child.pid),
            "supervisor_pid": os.getpid(),
            "supervisor_token": process_token(os.getpid()),
        })
        return child


def wait(child: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, str | None]:
    """The job's return code, and a message when it had to be stopped for running too long."""
    try:
        return child.wait(timeout=timeout_s), None
    except subprocess.TimeoutExpired:
        pass
    kill_group(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        kill_group(child.pid, signal.SIGKILL)
    message = (f"timed out after {format_duration(timeout_s)}: the job was stopped; "
               "raise `timeout` in program.md (up to max_timeout) if it needs longer")
    return child.wait(), message


def outcome(returncode: int | None, message: str | None) -> tuple[str, str | None]:
    """The terminal stage and message for a job that ended with ``returncode``."""
    if message is not None:
        return "ERROR", message
    if returncode == 0:
        return "COMPLETED", None
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else -returncode
        return "ERROR", f"the script was killed by signal {name} (out of memory, or killed from outside)"
    return "ERROR", f"the script exited with code {returncode}; the end of its log says why"


def finish(jobdir: Path, *, returncode: int | None, message: str | None) -> None:
    """Record the terminal status, unless cancel or a reconcile already did."""
    with job_lock(jobdir):
        status = read_status(jobdir)
        if is_terminal(status):
            return
        if status.get("pid"):
            kill_group(status["pid"])  # whatever the job left behind
        write_json(jobdir / STATUS_FILE, final_status(status, returncode=returncode, message=message))


def final_status(status: dict[str, Any], *, returncode: int | None, message: str | None) -> dict[str, Any]:
    stage, message = outcome(returncode, message)
    return {**status, "stage": stage, "finished_at": time.time(), "returncode": returncode, "message": message}


def supervise(jobdir: Path) -> None:
    spec = read_json(jobdir / SPEC_FILE)
    if spec is None:
        raise SystemExit(f"{jobdir / SPEC_FILE} is missing or unreadable")
    child = start(jobdir, spec)
    if child is None:
        return
    returncode, message = wait(child, float(spec["timeout_s"]))
    finish(jobdir, returncode=returncode, message=message)


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python _supervise.py <jobdir>")
    jobdir = Path(argv[1])
    detach(jobdir)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        supervise(jobdir)
    except (Exception, Terminated) as exc:  # never leave RUNNING behind while we can still write
        finish(jobdir, returncode=None, message=f"the job's supervisor stopped ({exc!r}); the job was stopped too")
        raise


if __name__ == "__main__":
    main(sys.argv)
