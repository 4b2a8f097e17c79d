"""Preflight on HF: the token, the namespace and the flavors, asked of HF through the hf backend.

Guarantees: the same :class:`~mlr_action.job.preflight.Finding` lines as the
folder's checks. The token's user must be the namespace or a member of it
(a ``problem`` that names the fix otherwise); every allowed flavor must be in
HF's live hardware catalog (a public list: no token needed). A failure to
ask is a finding, never a traceback: a token that cannot be checked is a
``problem`` that says why, a catalog that cannot be read a ``warning``
(flavors not checked). Nothing
here writes or spends: the backend is only asked who the token is and what
the catalog holds.
"""

from __future__ import annotations

from typing import Any

from mlr_action.job.preflight import INFO, PROBLEM, WARNING, Finding


def hf_findings(backend: Any, program: Any, campaign_id: str) -> list[Finding]:
    """The token, the namespace and the flavors, asked of HF through ``backend`` (an HfBackend)."""
    from mlr_action.core.jobs import BackendError

    out = []
    try:
        user, orgs = backend.account()
        namespace = program.campaign.namespace or user
        if namespace not in (user, *orgs):
            out.append(Finding(PROBLEM, f"namespace: the token's user {user} is not a member of {namespace} (it belongs "
                                        f"to {', '.join(orgs) or 'no organization'}): fix `namespace:` or use a token "
                                        f"of a member of {namespace}"))
        else:
            out.append(Finding(INFO, f"token: user {user}; jobs run and are billed in {namespace}"))
            out.append(Finding(INFO, f"the folder is uploaded to the private model repo {namespace}/"
                                     f"{backend.code_repo(campaign_id).split('/', 1)[1]} and mounted read-only"))
    except BackendError as exc:
        out.append(Finding(PROBLEM, f"token: {exc}"))
    return out + flavor_findings(backend, program)


def flavor_findings(backend: Any, program: Any) -> list[Finding]:
    """Every allowed flavor in HF's live hardware catalog (a public list: no token needed)."""
    from mlr_action.core.jobs import BackendError

    try:
        catalog = backend.flavors()
    except BackendError as exc:
        return [Finding(WARNING, f"the hardware catalog could not be read ({exc}); flavors not checked")]
    return [Finding(PROBLEM, f"allowed_flavors: {flavor} is not in HF's hardware catalog today (it offers "
                             f"{', '.join(sorted(catalog)[:20])}): remove it or pick one of those")
            for flavor in program.envelope.allowed_flavors if flavor not in catalog]
