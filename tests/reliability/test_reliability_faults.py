"""Faults on all three remote APIs: a campaign under them reaches the same stop as without them.

One campaign uses all three at once, each on a loopback stand-in spoken to by
the real client: HF Jobs (``HfApi``, the hf backend), GitHub (``PyGithub``, the
github forge: controls, dashboard, stop report) and Anthropic (the ``anthropic``
SDK, the Claude proposer). A fault-free run gives the baseline. Then, for each
API and each kind of fault, about a quarter of that API's requests fail:

- ``429``: rate limited, with a short ``Retry-After`` (waited for, then retried);
- ``429-long``: rate limited, asking for an hour (never slept on: the tick ends, the next one retries);
- ``5xx``: a server error;
- ``drop``: the connection dies before the request is processed;
- ``lost``: the server acts (a job is created, an issue opened, an LLM answer billed) and the answer is lost;
- ``slow``: the server acts and answers after the client's timeout (made short here).

Every faulted campaign must end with the same experiments and the same stop
(reason and best config) as the baseline, every job the Hub created must be in
the ledger exactly once, there must be one dashboard and one stop report, and
the envelope must hold after every tick, on the ledger's accounting and on the
servers' own records: the jobs the Hub ran and the LLM answers the API billed
(the ledger may over-count LLM dollars, never under-count them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("anthropic")
pytest.importorskip("github")

from loopback.anthropic_stub import StubAnthropic, is_research, search_turn, structured, user_text  # noqa: E402
from loopback.github_server import FakeGitHub  # noqa: E402
from loopback.hf_server import FakeHubServer  # noqa: E402
from mlr_action.backends import _hf_http  # noqa: E402
from mlr_action.backends.hf import HfBackend  # noqa: E402
from mlr_action.github.forge import GitHubForge  # noqa: E402
from mlr_action.proposers.claude import ClaudeProposer  # noqa: E402
from mlr_action.proposers.llm import ClaudeClient  # noqa: E402
from mlr_action.proposers.pricing import DEFAULT_MODEL, cost_usd  # noqa: E402
from mlr_action.shell.step import Step  # noqa: E402
from programs import ENVELOPE, with_  # noqa: E402
from reliability import (  # noqa: E402
    GRID,
    OPEN,
    RanJob,
    assert_exactly_once,
    assert_within_envelope,
    essence,
    make_repo,
    no_fsync,
    program_at,
    state_at,
)
from simulate import FakeClock  # noqa: E402

pytestmark = pytest.mark.usefixtures(no_fsync.__name__)
HF_TOKEN = "hf_" + "FakeLoopbackToken0123456789abcdef"  # built, so no token-shaped literal is committed
ANTHROPIC_KEY = "sk-" + "ant-test-0000-not-a-real-key"  # built, so no token-shaped literal is committed
TIMEOUT_S = 0.3  # every client's timeout, made short so that a slow answer costs little
SLOW_S = 0.8  # how late a slow answer comes
RATE = {"hf": 0.25, "github": 0.25, "anthropic": 0.4}  # the Anthropic API sees a few requests only
ENVELOPE_UNDER_TEST = with_(ENVELOPE, max_jobs=4, max_parallel=2, max_llm_usd=1)
TRAIN = "print('eval_accuracy=0.5')\n"
# The server-side name of each kind of fault, per API.
KINDS = {
    "429": {"hf": "429", "github": "429", "anthropic": "429"},
    "429-long": {"hf": "429", "github": "429", "anthropic": "429"},
    "5xx": {"hf": "503", "github": "502", "anthropic": "529"},
    "drop": {"hf": "drop", "github": "drop", "anthropic": "drop"},
    "lost": {"hf": "lost", "github": "lost", "anthropic": "lost"},
    "slow": {"hf": "hang", "github": "slow", "anthropic": "slow"},
}
APIS = ("hf", "github", "anthropic")


def answer(body: dict):
    """A model that proposes grid point n-1 for iter n, and finds one source when it researches."""
    if is_research(body):
        return search_turn([("A recipe", "https://example.org/recipe")], "Recipes use lr 3e-4.")
    n = int(re.search(r"Propose experiment iter (\d+)", user_text(body)).group(1))
    config = GRID[(3 * n) % len(GRID)]
    return structured({"hypothesis": f"iter {n}: grid point {(3 * n) % len(GRID)}", "config": config,
                       "flavor": "a10g-large", "timeout_minutes": 60, "reason": "the next point"})


def finish_hub_jobs(hub) -> None:
    from reliability import metric_of

    for job in list(hub.jobs.values()):
        if job.stage in ("COMPLETED", "ERROR", "CANCELED", "DELETED"):
            continue
        words = [*job.spec.get("command", []), *job.spec.get("arguments", [])]
        args = dict(w[2:].split("=", 1) for w in words[words.index("mlr-job") + 1:])
        config = {"lr": float(args["lr"]), "batch_size": int(args["batch_size"]), "scheduler": args["scheduler"]}
        hub.advance(job.id, "RUNNING")
        hub.advance(job.id, "COMPLETED", logs=f"eval_accuracy={metric_of(config)}", running_secs=600)


@dataclass
class Run:
    essence: list
    best_config: dict | None
    codes: list
    injected: int
    llm_ledger: float
    llm_billed: float


def run_campaign(root: Path, monkeypatch, api: str | None = None, kind: str | None = None, seed: int = 0) -> Run:
    clock = FakeClock()
    make_repo(root, ENVELOPE_UNDER_TEST, OPEN, train=TRAIN)
    program = program_at(root)
    with FakeHubServer(token=HF_TOKEN, clock=clock.seconds) as hub, FakeGitHub() as gh, StubAnthropic(answer) as llm:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", llm.url)
        servers = {"hf": hub, "github": gh, "anthropic": llm}
        if api is not None:
            wait = "3600" if kind == "429-long" else {"hf": "0", "github": "0", "anthropic": "0.01"}[api]
            options = {"hang_s": SLOW_S} if api == "hf" else {"slow_s": SLOW_S}
            servers[api].chaos(RATE[api], seed=seed, kinds=(KINDS[kind][api],), retry_after=wait, **options)

        def new_step() -> Step:  # every tick is a new process
            backend = HfBackend(endpoint=hub.url, token=HF_TOKEN, policy=_hf_http.Policy(
                timeout_s=TIMEOUT_S, backoff_s=0.0, sleep=lambda s: None, max_retry_after_s=1.0))
            client = ClaudeClient(model=DEFAULT_MODEL, api_key=ANTHROPIC_KEY, timeout_s=TIMEOUT_S,
                                  research_timeout_s=TIMEOUT_S, max_retries=1)
            forge = GitHubForge(root, env=gh.env(), clock=clock, throttle=False, timeout=1, retries=2, backoff=0,
                                publish_runs=lambda root, message: None)
            # PyGithub takes whole seconds; the connection it makes on the first request reads this one.
            forge.api.github._Github__requester._Requester__timeout = TIMEOUT_S
            return Step(root=root, backend=backend, proposer=ClaudeProposer(client=client, clock=clock), forge=forge,
                        clock=clock)

        codes = []
        for _ in range(80):
            result = new_step().run()
            codes.append(result.exit_code)
            assert result.exit_code in (0, 1), result.events
            state = state_at(root)
            jobs = hub_truth(hub, state.campaign_id or "")
            assert_within_envelope(program, state, jobs)
            billed = sum(cost_usd(DEFAULT_MODEL, u) for u in llm.billed)
            assert billed <= state_usage_llm(state) + 1e-9, f"LLM spend under-counted: billed ${billed}, ledger ${state_usage_llm(state)}"
            if result.exit_code == 0 and state.stopped is not None and not state.in_flight:
                break
            clock.advance(900)
            finish_hub_jobs(hub)
        else:
            pytest.fail(f"the campaign did not stop: {codes}")
        if api is not None:
            servers[api].chaos(0)
        assert_exactly_once(state, jobs)
        dashboards = [i for i in gh.issues.values() if any(label["name"] == "mlr-dashboard" for label in i["labels"])]
        assert len(dashboards) == 1, f"{len(dashboards)} dashboards"
        reports = [c for c in gh.comments.values() if "mlr-action:stop-report" in c["body"]]
        assert len(reports) == 1, f"{len(reports)} stop reports"
        best = state.best
        return Run(essence(state), best.config if best else None, codes, servers[api].injected if api else 0,
                   state_usage_llm(state), billed)


def state_usage_llm(state) -> float:
    from mlr_action.core.budget import usage

    return usage(state).llm_usd


def hub_truth(hub, campaign: str) -> list[RanJob]:
    return [RanJob(j.id, int(j.labels["mlr-iter"]), j.spec["flavor"], int(j.spec["timeoutSeconds"]),
                   j.stage in ("COMPLETED", "ERROR", "CANCELED", "DELETED"), j.running_secs, j.stage == "CANCELED")
            for j in hub.jobs_of(campaign)]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Run:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        run = run_campaign(tmp_path_factory.mktemp("baseline") / "sweep", mp)
    assert set(run.codes) == {0}
    assert run.essence[-1] == ("stopped", "budget")
    return run


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("api", APIS)
def test_a_campaign_under_faults_reaches_the_same_stop(tmp_path, monkeypatch, baseline, api, kind):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    run = run_campaign(tmp_path / "sweep", monkeypatch, api, kind, seed=7 + APIS.index(api) * 10 + list(KINDS).index(kind))
    assert run.injected > 0, "no fault was injected"
    assert run.essence[-1] == baseline.essence[-1] and run.best_config == baseline.best_config
    assert run.essence == baseline.essence
    print(f"{api} {kind}: {run.injected} faults, ticks {run.codes}, LLM ledger ${run.llm_ledger:.4f} >= billed ${run.llm_billed:.4f}")
