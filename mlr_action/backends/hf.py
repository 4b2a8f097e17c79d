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
  a :class:`PermanentError` before any request
  (:mod:`mlr_action.backends._hf_ship`).
- Exactly once: ``submit`` first looks the job up by its campaign and iter
  labels and returns the existing id (the earliest created); a submit whose outcome is unknown
  (timeout, dropped connection, 5xx) raises :class:`TransientError` and is
  never sent twice within a call, so the step finds the job by its labels on
  the next tick. ``list_jobs`` asks ``HfApi.list_jobs(labels=...)`` and
  filters again on this side (:mod:`mlr_action.backends._hf_lookup`).
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
  retries of :mod:`mlr_action.backends._hf_http`. No message carries a token
  (:mod:`mlr_action.backends._hf_calls`).
- ``prices()`` are live USD per hour from the hardware catalog, read at most
  once an hour; when the catalog cannot be read it returns None and
  :attr:`HfBackend.prices_note` says why (the step then prices from the
  built-in table and says so). :meth:`HfBackend.flavor_memory` gives the same
  catalog's RAM and GPU memory per accelerator, for the out-of-memory ladder
  (:mod:`mlr_action.backends._hf_catalog`).
- What was looked up (the token's namespace, the catalog) survives the
  process in a cache the step keeps in ``runs/`` (:meth:`HfBackend.use_cache`,
  :meth:`HfBackend.cache`), sealed with the token
  (:mod:`mlr_action.backends._hf_catalog`): a tick with nothing to do makes
  one request, the listing of the campaign's jobs.
- The token comes from ``HF_TOKEN`` (or huggingface_hub's own lookup), the
  endpoint from ``HF_ENDPOINT``; the namespace from the Campaign block's
  ``namespace`` or, when absent, the token's own user.

Only this module and its ``_hf_*`` helpers import huggingface_hub, and only
when ``--backend hf`` is asked for.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Callable

from huggingface_hub import HfApi, get_token

from mlr_action.job import runner
from mlr_action.job.runner import code_repo
from mlr_action.backends import _hf_http, _hf_logs, _hf_view
from mlr_action.backends._common import job_labels
from mlr_action.backends._hf_calls import MESSAGES
from mlr_action.backends._hf_catalog import CatalogLookups, Hardware
from mlr_action.backends._hf_code import CodeShipper, Missing
from mlr_action.backends._hf_lookup import JobLookup
from mlr_action.backends._hf_ship import ship
from mlr_action.core.jobs import CAMPAIGN_LABEL, JobSpec, JobStage, JobView, PermanentError
from mlr_action.job.wakeup import Wake

UV_IMAGE = runner.UV_IMAGE
LOG_TAIL_LINES = 5000  # the metric is the last such line; a log is read from its end
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class HfBackend(CatalogLookups, JobLookup):
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
        self._hardware: list[Hardware] | None = None
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
        except Missing:
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
        except Missing:
            return ""
        return "".join(f"{line}\n" for line in lines)

    def cancel(self, *, job_id: str) -> None:
        """Cancel a live job; a finished or unknown job is left as it is."""
        if self.inspect(job_id=job_id).stage.terminal:
            return
        try:
            self._call(f"canceling job {job_id}", lambda: self.api.cancel_job(job_id=job_id, namespace=self.namespace()),
                       missing=True, writes=True)
        except Missing:
            return

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
