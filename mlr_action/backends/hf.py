"""The Hugging Face Jobs backend: one experiment is one HF Job, driven through ``huggingface_hub.HfApi``.

Guarantees (besides those of :mod:`mlr_action.core.jobs`):

- What a job runs: the campaign folder as shipped (``spec.folder``: the
  authorized commit's in GitHub mode, the work tree's locally), uploaded once
  per content to the private repo ``<namespace>/mlr-code-<campaign>`` and
  mounted read-only at ``/mlr/code`` at a pinned revision
  (:mod:`mlr_action.backends._hf_code`). The job copies it to a fresh
  writable folder, changes into it and runs ``spec.script_rel`` with the
  dependencies of :mod:`mlr_action.job.runner` (``uv run`` in the uv image or the
  Campaign's ``image``; pip and ``python`` in an image without uv); the
  spec's args as ``--name=value``; the ``MLR_*`` environment; ``HF_TOKEN``
  (and, with the job wake-up, ``MLR_WAKE_TOKEN``) only as a job *secret*,
  never as plain environment; flavor, timeout and
  labels from the spec. No code travels in the environment. A spec without a
  folder (older callers) ships its script alone; a script that is missing is
  a :class:`PermanentError` before any request.
- Exactly once: ``submit`` first looks the job up by its campaign and iter
  labels and returns the existing id (the earliest created); a submit whose outcome is unknown
  (timeout, dropped connection, 5xx) raises :class:`TransientError` and is
  never sent twice within a call, so the step finds the job by its labels on
  the next tick. ``list_jobs`` asks ``HfApi.list_jobs(labels=...)`` and
  filters again on this side.
- ``inspect`` reports the stage, the walltime charged and the status message
  ("OOMKilled", ...); a job the Hub no longer knows (404, or an id that is not
  a job id) is ``DELETED``. HF bills a job while it is *Starting* as well as
  *Running*, so the walltime charged is the upper bound of that, from the
  job's creation to its end (:mod:`mlr_action.backends._hf_view`), and
  ``bills_starting`` tells the step to reserve the Campaign block's
  ``scheduling_timeout`` for starting on every job.
- ``logs`` returns a finished job's log only when it is proven whole
  (:mod:`mlr_action.backends._hf_logs`): the read reached the launcher's
  last line (``mlr-launcher: exit=<status>``, :data:`mlr_action.job.runner.SENTINEL`),
  or, for a job that did not complete (killed before its launcher could
  print) or was submitted before the launcher printed it, the service
  closed the replay. A read ends at the policy's ``log_deadline_s`` however
  the service keeps the stream open. Otherwise it raises
  :class:`LogIncomplete`, and the step reads it again on a later tick. The
  last :data:`LOG_TAIL_LINES` lines are read; the launcher's line is not
  part of the log returned.
- Errors say what to do: 401/403 name the token permission needed, 402 where
  to add credits, 404 the namespace to fix (all :class:`PermanentError`);
  429, 5xx and network failures are :class:`TransientError` after the bounded
  retries of :mod:`mlr_action.backends._hf_http`. No message carries a token.
- ``prices()`` are live USD per hour from the hardware catalog, read at most
  once an hour; when the catalog cannot be read it returns None and
  :attr:`HfBackend.prices_note` says why (the step then prices from the
  built-in table and says so). :meth:`HfBackend.flavor_memory` gives the same
  catalog's RAM and GPU memory per accelerator, for the out-of-memory ladder.
- What was looked up (the token's namespace, the catalog) survives the
  process in a cache the step keeps in ``runs/`` (:meth:`HfBackend.use_cache`,
  :meth:`HfBackend.cache`), sealed with the token
  (:mod:`mlr_action.backends._hf_catalog`): a tick with nothing to do makes
  one request, the listing of the campaign's jobs.
- The token comes from ``HF_TOKEN`` (or huggingface_hub's own lookup), the
  endpoint from ``HF_ENDPOINT``; the namespace from the Campaign block's
  ``namespace`` or, when absent, the token's own user.

Only this module and ``_hf_http`` import huggingface_hub, and only when
``--backend hf`` is asked for.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, TypeVar

import httpx2
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

from mlr_action.job import runner
from mlr_action.job.runner import code_repo
from mlr_action.backends import _hf_catalog, _hf_http, _hf_logs, _hf_view
from mlr_action.backends._common import job_env, job_folder, job_key, job_labels
from mlr_action.backends._hf_code import CodeShipper, Missing
from mlr_action.core.jobs import (
    CAMPAIGN_LABEL,
    ITER_LABEL,
    BackendError,
    JobSpec,
    JobStage,
    JobView,
    LogIncomplete,
    PermanentError,
    TransientError,
)
from mlr_action.core.flavors import FlavorMemory
from mlr_action.job.shipped import ShippedFolder
from mlr_action.job.wakeup import Wake

T = TypeVar("T")

UV_IMAGE = runner.UV_IMAGE
LOG_TAIL_LINES = 5000  # the metric is the last such line; a log is read from its end
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# -- what the user reads when something goes wrong ----------------------------

TOKEN_SCOPE = ("a token with write access (a classic 'write' token, or a fine-grained token with "
               "'Start and manage Jobs on your behalf' and write access to the output repos) for namespace {ns}")
MESSAGES = {
    "no-token": ("no Hugging Face token: set HF_TOKEN to " + TOKEN_SCOPE.format(ns="your user or org")
                 + " (create one at https://huggingface.co/settings/tokens); this job was not submitted"),
    401: "HF rejected the token (401) while {action}: HF_TOKEN is invalid or expired; set it to " + TOKEN_SCOPE,
    403: "HF refused {action} (403): the token lacks permission; it needs " + TOKEN_SCOPE,
    402: ("HF refused {action} (402 Payment Required): namespace {ns} has no credits or payment method; add one at "
          "https://huggingface.co/settings/billing (for an org: its Settings > Billing), then run the step again; "
          "this job was not submitted"),
    404: ("HF has no namespace {ns} (404 while {action}): set `namespace:` in program.md's Campaign block to your "
          "user or org name, or remove it to use the token's own user"),
    "not-found": "HF answered 404 while {action}: check that HF_ENDPOINT ({endpoint}) is the Hugging Face Hub",
    "bad-request": "HF refused {action} ({status}): {detail}; fix program.md (flavor, timeout) or the script and try again",
    "unknown-outcome": ("{action}: the request may have reached HF but its answer was lost ({detail}); the next step "
                        "looks for the job by its labels before submitting again"),
    "network": "could not reach HF at {endpoint} while {action} ({detail}); the next tick retries",
    "prices-fallback": ("live HF prices could not be read ({why}); costs use the built-in price table, rounded up"),
}


@dataclass(frozen=True)
class Shipment:
    """What the container gets: its image, the launcher command, the environment, and the folder to mount."""

    image: str
    command: list[str]
    env: dict[str, str]
    folder: ShippedFolder


def ship(spec: JobSpec, *, image: str = UV_IMAGE, wake: Wake | None = None) -> Shipment:
    """The job for ``spec``: its folder and a command that runs the script there; PermanentError when it cannot.

    The folder is ``spec.folder``; a spec built without one ships its script alone (the authorized bytes,
    ``spec.script_bytes``, or else the file at ``spec.script``). With ``wake``, the launcher dispatches the
    workflow when the script exits, and the environment says where (the token goes as a secret, in submit).
    """
    folder, script, plan = job_folder(spec)
    command = ["bash", "-c", runner.launcher(plan, script, wake=wake is not None), "mlr-job", *spec.args]
    env = {**job_env(spec), **(wake.env() if wake else {})}
    return Shipment(image=plan.image or image, command=command, env=env, folder=folder)


def prices_per_hour(hardware: list[Any]) -> dict[str, float]:
    """USD per hour by flavor from the hardware catalog (which prices per ``unit_label``)."""
    return _hf_catalog.prices_of(_hf_catalog.read_catalog(hardware))


class HfBackend:
    name = "hf"
    bills_starting = True  # HF bills a job while it starts, not only while it runs

    def __init__(
        self,
        *,
        namespace: str | None = None,
        token: str | None = None,
        endpoint: str | None = None,
        image: str = UV_IMAGE,
        policy: _hf_http.Policy | None = None,
        token_lookup: Callable[[], str | None] = get_token,
        clock: Callable[[], datetime] = _hf_view.utcnow,
        wake: Wake | None = None,
    ) -> None:
        self.endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
        self.image = image
        self.prices_note: str | None = None
        self.clock = clock
        self._namespace = namespace
        self._whoami: str | None = None  # the token's user, when it was asked (or read from the cache)
        self._hardware: list[_hf_catalog.Hardware] | None = None
        self._hardware_read_at: datetime | None = None
        self._ends: dict[str, tuple[bool, JobStage]] = {}  # job id -> (its launcher prints SENTINEL, its stage)
        self._cache_changed = False
        self._token = token
        self._token_lookup = token_lookup  # HF_TOKEN, OIDC, then the token file of `hf auth login`
        self.policy = policy or _hf_http.Policy()
        self.wake = wake  # each job starts the next tick when it ends (mlr_action.job.wakeup)
        _hf_http.install()
        self.api = HfApi(endpoint=self.endpoint, token=token, library_name="mlr-action")
        self.code = CodeShipper(self.api, self._call)

    # -- JobBackend ----------------------------------------------------------

    def submit(self, *, spec: JobSpec) -> str:
        labels = job_labels(spec)
        shipment = ship(spec, image=self.image, wake=self.wake)
        token = self.token()
        existing = self._find(labels)
        if existing:
            return existing
        volume = self.code.volume(shipment.folder, repo_id=self.code_repo(spec.campaign))
        action = f"submitting iter {spec.iter} of campaign {spec.campaign}"
        info = self._call(action, lambda: self.api.run_job(
            image=shipment.image, command=shipment.command, env=shipment.env, secrets={"HF_TOKEN": token, **(self.wake.secrets() if self.wake else {})},
            flavor=spec.flavor, timeout=spec.timeout_s, labels=labels, namespace=self.namespace(),
            name=re.sub(r"[^a-zA-Z0-9_-]", "-", f"mlr-{spec.campaign}-{spec.iter}"), volumes=[volume],
        ), writes=True)
        return self._settle(labels, str(info.id))

    def inspect(self, *, job_id: str) -> JobView:
        if not _JOB_ID.match(job_id):
            return _hf_view.gone(job_id, "not an HF job id")
        try:
            info = self._call(f"inspecting job {job_id}",
                              lambda: self.api.inspect_job(job_id=job_id, namespace=self.namespace()), missing=True)
        except _Missing:
            return _hf_view.gone(job_id, "the Hub has no such job (404)")
        return self._view(info, self.clock())

    def list_jobs(self, *, campaign: str) -> list[JobView]:
        return [v for v in self._list({CAMPAIGN_LABEL: campaign}) if v.labels.get(CAMPAIGN_LABEL) == campaign]

    def logs(self, *, job_id: str) -> str:
        """The job's log, proven whole; :class:`LogIncomplete` when it is not (see :mod:`._hf_logs`)."""
        from huggingface_hub.utils import build_hf_headers, get_session

        if not _JOB_ID.match(job_id):
            return ""
        if not self._ends.get(job_id, (False, JobStage.RUNNING))[1].terminal:
            self.inspect(job_id=job_id)  # how it ended, and whether its launcher prints its last line
        sentinel, stage = self._ends.get(job_id, (False, JobStage.DELETED))
        url = f"{self.api.endpoint}/api/jobs/{self.namespace()}/{job_id}/logs"
        headers = build_hf_headers(token=self.token(), library_name="mlr-action")
        try:
            lines = self._call(f"reading the logs of job {job_id}", lambda: _hf_logs.read_log(
                get_session(), url, headers=headers, params={"tail": LOG_TAIL_LINES}, job_id=job_id,
                deadline_s=self.policy.log_deadline_s, sentinel=sentinel,
                required=sentinel and stage is JobStage.COMPLETED), missing=True)
        except _Missing:
            return ""
        return "".join(f"{line}\n" for line in lines)

    def cancel(self, *, job_id: str) -> None:
        """Cancel a live job; a finished or unknown job is left as it is."""
        if self.inspect(job_id=job_id).stage.terminal:
            return
        try:
            self._call(f"canceling job {job_id}", lambda: self.api.cancel_job(job_id=job_id, namespace=self.namespace()),
                       missing=True, writes=True)
        except _Missing:
            return

    def prices(self) -> dict[str, float] | None:
        """Live USD per hour by flavor (the catalog, read at most hourly); None, with ``prices_note``, when unknown."""
        hardware = self._catalog()
        if hardware is None:
            return None
        prices = _hf_catalog.prices_of(hardware)
        self.prices_note = None if prices else MESSAGES["prices-fallback"].format(why="the catalog listed no prices")
        return prices or None

    def flavor_memory(self) -> dict[str, FlavorMemory] | None:
        """RAM and GPU memory per accelerator by flavor, from the catalog :meth:`prices` read; None before or without it."""
        return _hf_catalog.memory_of_catalog(self._hardware) if self._hardware is not None else None

    # -- what a tick need not ask again (kept by the step in runs/) ---------------

    def use_cache(self, data: Any) -> None:
        """Take the namespace and a catalog under an hour old from ``data``, when this token sealed it; else nothing."""
        token = self._token or os.environ.get("HF_TOKEN") or self._token_lookup()
        cached = _hf_catalog.unseal(data, token=token, endpoint=self.api.endpoint) if token else None
        if cached is None:
            return
        if cached.namespace and self._namespace is None:
            self._namespace = self._whoami = cached.namespace
        if cached.hardware is not None and self._fresh(cached.read_at):
            self._hardware, self._hardware_read_at = cached.hardware, cached.read_at

    def cache(self) -> dict[str, Any] | None:
        """What to keep for the next tick, sealed; None when nothing new was looked up."""
        if not self._cache_changed:
            return None
        return _hf_catalog.seal(token=self.token(), endpoint=self.api.endpoint, namespace=self._whoami,
                                hardware=self._hardware, read_at=self._hardware_read_at)

    def _fresh(self, read_at: datetime | None) -> bool:
        age = (self.clock() - read_at).total_seconds() if read_at is not None else -1.0
        return 0 <= age < _hf_catalog.MAX_AGE_S

    def _catalog(self) -> list[_hf_catalog.Hardware] | None:
        if self._hardware is not None and self._fresh(self._hardware_read_at):
            return self._hardware
        try:
            items = self._call("reading the hardware catalog", self.api.list_jobs_hardware, namespaced=False)
        except BackendError as exc:
            self.prices_note = MESSAGES["prices-fallback"].format(why=str(exc).rstrip("."))
            return None
        self._hardware, self._hardware_read_at = _hf_catalog.read_catalog(items), self.clock()
        self._cache_changed = True
        return self._hardware

    # -- Hub repos (allow_deletes) ---------------------------------------------

    def delete_repo(self, *, repo_id: str) -> bool:
        """Delete the model or dataset repo ``repo_id``; False when neither exists."""
        for repo_type in ("model", "dataset"):
            exists = self._call(f"checking {repo_type} repo {repo_id}",
                                lambda: self.api.repo_exists(repo_id, repo_type=repo_type))
            if exists:
                self._call(f"deleting {repo_type} repo {repo_id}",
                           lambda: self.api.delete_repo(repo_id, repo_type=repo_type, missing_ok=True), writes=True)
                return True
        return False

    # -- preflight (mlr validate --backend hf, the pull request check) -------------

    def account(self) -> tuple[str, list[str]]:
        """The token's user and the organizations it belongs to (whoami)."""
        self.token()
        me = self._call("checking the token (whoami)", lambda: self.api.whoami(cache=True), namespaced=False)
        return str(me["name"]), [str(o.get("name")) for o in me.get("orgs") or [] if isinstance(o, dict)]

    def flavors(self) -> list[str]:
        """The flavors of the live hardware catalog."""
        hardware = self._call("reading the hardware catalog", self.api.list_jobs_hardware, namespaced=False)
        return [str(item.name) for item in hardware]

    def code_repo(self, campaign: str) -> str:
        """The private repo the campaign's folder is shipped through (see :mod:`mlr_action.backends._hf_code`)."""
        return code_repo(self.namespace(), campaign)

    # -- internals -------------------------------------------------------------

    def token(self) -> str:
        token = self._token or os.environ.get("HF_TOKEN") or self._token_lookup()
        if not token:
            raise PermanentError(MESSAGES["no-token"])
        return token

    def namespace(self) -> str:
        """The namespace jobs run in: the configured one, or the token's user (asked once)."""
        if self._namespace is None:
            self.token()
            me = self._call("checking the token (whoami)", lambda: self.api.whoami(cache=True), namespaced=False)
            self._namespace = self._whoami = str(me["name"])
            self._cache_changed = True
        return self._namespace

    def _list(self, labels: dict[str, str]) -> list[JobView]:
        infos = self._call("listing the campaign's jobs",
                           lambda: list(self.api.list_jobs(labels=labels, namespace=self.namespace())))
        now = self.clock()
        return sorted((self._view(i, now) for i in infos), key=lambda v: (v.iter if v.iter is not None else -1, v.job_id))

    def _view(self, info: Any, now: datetime) -> JobView:
        """``info`` as a JobView, remembering what :meth:`logs` needs to know of how the job ends."""
        view = _hf_view.job_view(info, now, args=_args(info))
        self._ends[view.job_id] = (runner.prints_sentinel(list(info.command or [])), view.stage)
        return view

    def _settle(self, labels: dict[str, str], created: str) -> str:
        """The job for these labels once two steps raced past :meth:`_find` and both created one.

        Both keep the earliest created (a step that saw only its own job created the earliest), and the
        step that created a later one cancels it at once, before it can start. Unsettled (the listing
        failed), a duplicate is canceled by the next step's reconcile (a ``duplicate-job`` row).
        """
        try:
            same = [i for i in self._same_iter(labels, "checking for a concurrent submit of the same iter")
                    if _hf_view.stage(i) is not JobStage.CANCELED]
        except BackendError:
            return created
        if len(same) < 2:
            return created
        first = str(same[0].id)
        if first != created:
            with contextlib.suppress(BackendError):
                self._call(f"canceling job {created}, a duplicate of {first}",
                           lambda: self.api.cancel_job(job_id=created, namespace=self.namespace()), writes=True)
        return first

    def _find(self, labels: dict[str, str]) -> str | None:
        """The job already submitted for these labels (the earliest created), if any."""
        same = self._same_iter(labels, "looking for a job already submitted for this iter")
        return str(same[0].id) if same else None

    def _same_iter(self, labels: dict[str, str], action: str) -> list[Any]:
        """The jobs HF lists with the campaign and iter of ``labels``, the earliest created first."""
        key = job_key(labels)
        wanted = {CAMPAIGN_LABEL: labels[CAMPAIGN_LABEL], ITER_LABEL: labels[ITER_LABEL]}
        infos = self._call(action, lambda: list(self.api.list_jobs(labels=wanted, namespace=self.namespace())))
        same = [i for i in infos if job_key(dict(i.labels or {})) == key]
        return sorted(same, key=lambda i: (i.created_at.timestamp() if i.created_at else float("inf"), str(i.id)))

    def _call(self, action: str, fn: Callable[[], T], *, missing: bool = False, writes: bool = False,
              namespaced: bool = True) -> T:
        """``fn()``, with every SDK and HTTP failure turned into a BackendError that says what to do."""
        try:
            with _hf_http.applied(self.policy):
                return fn()
        except LogIncomplete:
            raise
        except TransientError as exc:
            raise TransientError(f"{action}: {exc}") from exc
        except LocalTokenNotFoundError:
            raise PermanentError(MESSAGES["no-token"]) from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if missing and status == 404:
                raise _Missing() from None
            raise self._http_error(action, status, exc, namespaced=namespaced) from exc
        except httpx2.HTTPError as exc:  # timeouts and dropped connections the transport did not retry
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
            message = MESSAGES["unknown-outcome"] if writes else MESSAGES["network"]
            raise TransientError(message.format(endpoint=self.api.endpoint, action=action, detail=detail)) from exc

    def _http_error(self, action: str, status: int, exc: HfHubHTTPError, *, namespaced: bool) -> BackendError:
        ns = self._namespace or "(the token's user)"
        if status == 404 and not namespaced:
            return PermanentError(MESSAGES["not-found"].format(action=action, endpoint=self.api.endpoint))
        if status in (401, 402, 403, 404):
            return PermanentError(MESSAGES[status].format(action=action, ns=ns))
        if status == 429 or status >= 500 or status == 408:
            return TransientError(f"HF answered {status} while {action}; the next tick retries")
        detail = (getattr(exc, "server_message", None) or str(exc).strip().splitlines()[0])[:300]
        return PermanentError(MESSAGES["bad-request"].format(action=action, status=status, detail=detail))


_Missing = Missing  # a 404 where the caller expects one (a job that is gone)


def _args(info: Any) -> list[str]:
    """The spec's args: what follows the launcher's ``mlr-job`` marker (see :func:`ship`)."""
    words = [str(w) for w in [*(info.command or []), *(getattr(info, "arguments", None) or [])]]
    return words[words.index("mlr-job") + 1:] if "mlr-job" in words else []
