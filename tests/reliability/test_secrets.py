"""No secret is written: a job that prints its own tokens, errors that quote them, a token pasted into program.md.

The tokens are the step's own ``HF_TOKEN``, ``GITHUB_TOKEN`` and
``ANTHROPIC_API_KEY``, set in the environment at run time (token-shaped ones,
and opaque ones that only the environment says are secret). After each
scenario every file the bot wrote is scanned for them: ``runs/`` (ledger,
summary, stop report, escalations, research notes) and ``.mlr/``; so are
commit messages and trees in a real bare origin, issue bodies and comments
on a loopback GitHub, requests to a loopback Anthropic, and the Actions log
(the action's stdout, step summary and outputs).

One file is exempt, by design and documented in docs/RELIABILITY.md: the
local backend's raw job output, ``.mlr/jobs/<id>/output.log``. It is the
job's own stdout, never committed (``.mlr/`` ignores everything), the local
twin of the logs HF keeps for a job on its side.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from disguises import SOURCE, disguises, exposed
from gitrepos import clone, git, isolate_git, make_origin
from mlr_action.core.jobs import JobStage
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.forges.files import FileForge
from mlr_action.core.ledger import read_ledger
from mlr_action.core.proposal import Proposal
from mlr_action.proposers.search import SearchProposer
from mlr_action.core.state import fold
from mlr_action.shell.step import Step
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import FakeClock

OPEN = with_(CAMPAIGN, target=None, patience=None)
RAW_JOB_OUTPUT = re.compile(r"\.mlr/jobs/[^/]+/output\.log$")


def _random(alphabet: str, n: int, seed: int) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
# Built at run time: no token-shaped literal is ever committed.
SHAPED = {
    "HF_TOKEN": "hf_" + _random(ALNUM, 34, 1),
    "GITHUB_TOKEN": "ghp_" + _random(ALNUM, 36, 2),
    "ANTHROPIC_API_KEY": "sk-ant-api03-" + _random(ALNUM + "-_", 60, 3),
}
# Secrets that look like nothing in particular: only the environment says they are secret.
OPAQUE = {
    "HF_TOKEN": "opaque-hf-" + _random(ALNUM, 20, 4),
    "GITHUB_TOKEN": "opaque-gh-" + _random(ALNUM, 20, 5),
    "ANTHROPIC_API_KEY": "opaque-ant-" + _random(ALNUM, 20, 6),
}


@pytest.fixture(params=["shaped", "opaque"])
def secrets(request, monkeypatch) -> dict[str, str]:
    values = SHAPED if request.param == "shaped" else OPAQUE
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in text]


def scan(root: Path, secrets: dict[str, str]) -> dict[str, list[str]]:
    """Every file under runs/ and .mlr/ that holds a secret (the raw job output excepted)."""
    found = {}
    for folder in ("runs", ".mlr"):
        for path in sorted((root / folder).rglob("*")) if (root / folder).exists() else []:
            rel = path.relative_to(root).as_posix()
            if path.is_file() and not RAW_JOB_OUTPUT.search(rel):
                hit = leaks(path.read_text(errors="replace"), secrets)
                if hit:
                    found[rel] = hit
    return found


def make_repo(root: Path, envelope: dict | None = None, campaign: dict | None = None, *, train: str = "print('eval_accuracy=0.5')\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.py").write_text(train)
    (root / "program.md").write_text(program_text(envelope or with_(ENVELOPE, max_jobs=3), campaign or OPEN))
    return root


def printed_by_a_job(secrets: dict[str, str]) -> str:
    """What a careless training script prints: its tokens, plainly and in the usual disguises."""
    hf, gh, ant = secrets["HF_TOKEN"], secrets["GITHUB_TOKEN"], secrets["ANTHROPIC_API_KEY"]
    return (f"env: HF_TOKEN={hf} GITHUB_TOKEN={gh} ANTHROPIC_API_KEY={ant}\n"
            f"curl -H 'Authorization: Bearer {hf}' https://huggingface.co/api/whoami-v2\n"
            f"anthropic.AuthenticationError: invalid x-api-key {ant}\n"
            f"hub_url=https://huggingface.co/me/sweep-1?token={hf}\n")


class Leaky(SearchProposer):
    """The search proposer, but its hypotheses quote a token, and its second proposal puts one in the config."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret, self.calls = secret, 0

    def propose(self, *, program, state, count: int, check=None, used=None, prices=None) -> list[Proposal]:
        self.calls += 1
        found = super().propose(program=program, state=state, count=count, check=check, used=used, prices=prices)
        found = [p.model_copy(update={"hypothesis": f"try it with {self.secret}", "reason": f"because {self.secret}"}) for p in found]
        if self.calls == 2 and found:  # refused by the validator: the refusal quotes the value
            found[0] = found[0].model_copy(update={"config": {**found[0].config, "scheduler": self.secret}})
        return found


# --- a job that prints its own tokens ----------------------------------------------------------------


def test_a_job_that_prints_its_tokens_leaves_none_in_anything_the_bot_writes(tmp_path, secrets):
    root = make_repo(tmp_path / "repo")
    clock = FakeClock()
    backend = InMemoryBackend(clock=clock.seconds)
    step = Step(root=root, backend=backend, proposer=Leaky(secrets["HF_TOKEN"]), forge=FileForge(root), clock=clock)
    said, seen = [], {}
    for tick in range(12):
        result = step.run()
        said += result.events
        seen.update({p.name: p.read_text() for p in (root / "runs").rglob("*.md")})  # escalations come and go
        if result.stopped:
            break
        clock.advance(900)
        for job in list(backend.jobs.values()):
            if job.stage.terminal:
                continue
            if job.spec.iter % 2:  # odd iters fail: their log tail and status message are recorded
                backend.advance(job.job_id, JobStage.ERROR, duration_s=60, logs=printed_by_a_job(secrets),
                                message=f"exit code 1 (token {secrets['GITHUB_TOKEN']})")
            else:
                backend.advance(job.job_id, JobStage.COMPLETED, duration_s=600,
                                logs=printed_by_a_job(secrets) + "eval_accuracy=0.8\n")
    state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
    assert state.stopped is not None, said
    assert any(e.status == "error" for e in state.experiments.values())
    assert {"stop-report.md", "envelope-breach.md", "summary.md"} <= set(seen)
    assert "scheduler='***' is outside the search space" in seen["envelope-breach.md"]  # the refusal quoted the value, masked
    assert "***" in (root / "runs" / "ledger.jsonl").read_text()  # the tokens were there, and were masked
    assert scan(root, secrets) == {} and leaks("\n".join(seen.values()), secrets) == []
    assert leaks("\n".join(said), secrets) == []


def test_a_local_job_prints_its_tokens_only_to_its_own_raw_log(tmp_path, secrets):
    from mlr_action.backends.local import LocalBackend

    train = ("import os\nfor n in ('HF_TOKEN', 'GITHUB_TOKEN', 'ANTHROPIC_API_KEY'):\n    print(n, os.environ[n])\n"
             "raise SystemExit('failed with ' + os.environ['HF_TOKEN'])\n")
    root = make_repo(tmp_path / "repo", with_(ENVELOPE, max_jobs=1, allowed_flavors=["cpu-basic"], max_timeout="5m", max_walltime="1h"),
                     with_(OPEN, flavor="cpu-basic", timeout="1m"), train=train)
    clock = FakeClock()
    backend = LocalBackend(root)
    step = Step(root=root, backend=backend, proposer=SearchProposer(), forge=FileForge(root), clock=clock)
    said = step.run().events
    (job_id,) = [v.job_id for v in backend.list_jobs(campaign="repo")]
    deadline = time.monotonic() + 20
    while not backend.inspect(job_id=job_id).stage.terminal:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    said += step.run().events
    raw = root / ".mlr" / "jobs" / job_id / "output.log"
    assert leaks(raw.read_text(), secrets) == list(secrets)  # the job did print them, to its own raw log
    assert (root / ".mlr" / ".gitignore").read_text() == "*\n"  # which is never committed
    assert fold(read_ledger(root / "runs" / "ledger.jsonl")).experiments[1].status == "error"
    assert scan(root, secrets) == {} and leaks("\n".join(said), secrets) == []


# --- exceptions that carry a token -------------------------------------------------------------------


def _hf_step(tmp_path: Path, secrets: dict[str, str], fault: tuple) -> tuple[Path, list[str], object]:
    pytest.importorskip("huggingface_hub")
    from loopback.hf_server import FakeHubServer
    from mlr_action.backends import _hf_http
    from mlr_action.backends.hf import HfBackend

    root = make_repo(tmp_path / "repo")
    clock = FakeClock()
    with FakeHubServer(token=secrets["HF_TOKEN"], clock=clock.seconds) as hub:
        hub.fail(*fault[:3], message=fault[3], times=5)
        backend = HfBackend(endpoint=hub.url, policy=_hf_http.Policy(backoff_s=0.0, timeout_s=5.0, sleep=lambda s: None))
        result = Step(root=root, backend=backend, proposer=SearchProposer(), forge=FileForge(root), clock=clock).run()
    return root, result.events, result


HF_FAULTS = {
    # what HF answers, echoing the token in its body: (method, path, status, message), exit code
    "400 on submit": (("POST", r"^/api/jobs/me$", 400), "bad spec for token {HF_TOKEN}", 2),
    "401 on whoami": (("GET", r"^/api/whoami-v2$", 401), "Invalid credentials: {HF_TOKEN}", 2),
    "403 on submit": (("POST", r"^/api/jobs/me$", 403), "token {HF_TOKEN} may not start jobs", 2),
    "503 on list": (("GET", r"^/api/jobs/me$", 503), "upstream said {HF_TOKEN}", 1),
}


@pytest.mark.parametrize("case", HF_FAULTS, ids=list(HF_FAULTS))
def test_an_hf_error_that_echoes_the_token_is_redacted(tmp_path, secrets, case):
    (method, path, status), message, code = HF_FAULTS[case]
    root, said, result = _hf_step(tmp_path, secrets, (method, path, status, message.format(**secrets)))
    assert result.exit_code == code, said
    assert scan(root, secrets) == {} and leaks("\n".join(said), secrets) == []
    if code == 2:
        assert (root / "runs" / "escalations" / "unrecoverable-error.md").exists()


def test_a_github_error_that_echoes_the_token_is_redacted(tmp_path, secrets):
    from loopback.github_server import FakeGitHub
    from mlr_action.core.jobs import PermanentError
    from mlr_action.github.forge import GitHubForge

    with FakeGitHub(token=secrets["GITHUB_TOKEN"]) as gh:
        gh.fail("POST", r"/issues$", 422, f"Validation Failed: token {secrets['GITHUB_TOKEN']} in body", times=10)
        root = make_repo(tmp_path / "repo")
        (root / "program.md").write_text("## Budget envelope\n\nnone\n")  # invalid: the step escalates
        forge = GitHubForge(root, env=gh.env(), clock=FakeClock(), throttle=False, backoff=0, publish_runs=lambda root, message: None)
        result = Step(root=root, backend=InMemoryBackend(), proposer=SearchProposer(), forge=forge, clock=FakeClock()).run()
        with pytest.raises(PermanentError) as info:
            forge.publish_escalation(kind="ledger", title="t", body="b")
        bodies = list(gh.bodies)
    assert result.exit_code == 2 and "could not publish the invalid-program report" in "\n".join(result.events)
    assert leaks(str(info.value), secrets) == [] and "422" in str(info.value)
    assert leaks("\n".join(result.events), secrets) == [] and leaks("\n".join(bodies), secrets) == []


ANTHROPIC_FAULTS = {
    "401": (401, "authentication_error", "the API key was refused: check the ANTHROPIC_API_KEY secret"),
    "400": (400, "invalid_request_error", "the API refused the request"),
    "500": (500, "api_error", "Anthropic API error 500"),
}


@pytest.mark.parametrize("case", ANTHROPIC_FAULTS, ids=list(ANTHROPIC_FAULTS))
def test_an_anthropic_error_that_echoes_the_key_is_redacted(tmp_path, secrets, case, monkeypatch):
    from loopback.anthropic_stub import StubAnthropic, error
    from mlr_action.proposers.claude import ClaudeProposer

    status, kind, words = ANTHROPIC_FAULTS[case]
    with StubAnthropic(lambda body: error(status, kind, f"invalid x-api-key: {secrets['ANTHROPIC_API_KEY']}")) as stub:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        root = make_repo(tmp_path / "repo")
        clock = FakeClock()
        proposer = ClaudeProposer(clock=clock)
        proposer.client._max_retries = 0  # the 500 would be retried with backoff: not needed here
        result = Step(root=root, backend=InMemoryBackend(clock=clock.seconds), proposer=proposer, forge=FileForge(root), clock=clock).run()
    ledger = (root / "runs" / "ledger.jsonl").read_text()
    assert words in ledger + "\n".join(result.events), result.events
    assert scan(root, secrets) == {} and leaks("\n".join(result.events), secrets) == []


# --- a token pasted into program.md ----------------------------------------------------------------------


def test_a_token_in_program_md_is_refused_and_never_copied_anywhere(tmp_path, secrets, capsys):
    from loopback.github_server import FakeGitHub
    from mlr_action.commands.cli import main
    from mlr_action.github.forge import GitHubForge

    root = make_repo(tmp_path / "repo")
    text = (root / "program.md").read_text()
    pasted = text.replace("Be accurate.", f"Be accurate. Use {secrets['HF_TOKEN']} and {secrets['ANTHROPIC_API_KEY']}.")
    pasted = pasted.replace("max_jobs: 3", f"max_jobs: {secrets['GITHUB_TOKEN']}")
    (root / "program.md").write_text(pasted)
    with FakeGitHub(token=secrets["GITHUB_TOKEN"]) as gh:
        forge = GitHubForge(root, env=gh.env(), clock=FakeClock(), throttle=False, backoff=0, publish_runs=lambda root, message: None)
        backend = InMemoryBackend()
        result = Step(root=root, backend=backend, proposer=SearchProposer(), forge=forge, clock=FakeClock()).run()
        bodies = list(gh.bodies) + [i["title"] for i in gh.issues.values()]
    assert result.exit_code == 2 and backend.jobs == {}
    assert any("holds what looks like a token" in b for b in bodies)
    assert leaks("\n".join(bodies + result.events), secrets) == []
    assert not (root / "runs" / "ledger.jsonl").exists() and not (root / "runs" / "summary.md").exists()
    capsys.readouterr()
    assert main(["validate", "--program", str(root / "program.md")]) == 2
    out = capsys.readouterr()
    assert "holds what looks like a token" in out.err and leaks(out.out + out.err, secrets) == []


# --- commit messages and issues, through the real git sync ------------------------------------------------


def test_commits_issues_and_comments_never_carry_a_token(tmp_path, secrets, monkeypatch):
    from loopback.github_server import FakeGitHub
    from mlr_action.github.forge import GitHubForge
    from mlr_action.github.gitsync import publish_runs

    isolate_git(monkeypatch, tmp_path)
    monkeypatch.setenv("GITHUB_TOKEN", secrets["GITHUB_TOKEN"])  # isolate_git removed it
    program = program_text(with_(ENVELOPE, max_jobs=2), OPEN)
    origin = make_origin(tmp_path, {"program.md": program, "train.py": "print('eval_accuracy=0.5')\n"})
    root = clone(origin, tmp_path / "work")
    clock = FakeClock()
    backend = InMemoryBackend(clock=clock.seconds)
    with FakeGitHub(token=secrets["GITHUB_TOKEN"]) as gh:
        gh.permissions.update(alice="write")
        forge = GitHubForge(root, env=gh.env(), clock=clock, throttle=False, backoff=0)  # the real git sync
        step = Step(root=root, backend=backend, proposer=Leaky(secrets["ANTHROPIC_API_KEY"]), forge=forge, clock=clock)
        for _ in range(6):
            step.run()
            clock.advance(900)
            for job in list(backend.jobs.values()):
                if not job.stage.terminal:
                    backend.advance(job.job_id, JobStage.ERROR, duration_s=60, logs=printed_by_a_job(secrets),
                                    message=f"OOMKilled {secrets['HF_TOKEN']}")
        bodies = list(gh.bodies) + [c["body"] for c in gh.comments.values()] + [i["title"] for i in gh.issues.values()]
    assert len(bodies) >= 3  # a dashboard, its edits, the stop report
    log = git(origin, "log", "--format=%B", "main")
    assert log.count("mlr: ") >= 2
    tree = git(origin, "grep", "-I", "-e", ".", "main", "--", "runs", check=False)
    assert "runs/ledger.jsonl" in tree
    assert leaks(log, secrets) == [] and leaks(tree, secrets) == [] and leaks("\n".join(bodies), secrets) == []
    # A caller's own message is redacted too: the git sync is the last stop before the remote.
    (root / "runs" / "note.md").write_text("x\n")
    assert publish_runs(root, message=f"mlr: note with {secrets['HF_TOKEN']}")
    assert leaks(git(origin, "log", "-1", "--format=%B", "main"), secrets) == []


# --- research notes and what the LLM is sent ---------------------------------------------------------


def test_research_notes_llm_rows_and_prompts_never_carry_a_token(tmp_path, secrets, monkeypatch):
    from loopback.anthropic_stub import StubAnthropic, search_turn, structured
    from claude_helpers import answer
    from mlr_action.proposers.claude import ClaudeProposer

    hf = secrets["HF_TOKEN"]

    def respond(body):
        if body.get("tools"):
            return search_turn([(f"Leaked {hf}", f"https://example.com/{hf}")], f"Found a recipe; also a token {hf}.")
        return structured(answer(hypothesis=f"my hypothesis mentions {hf}", reason=f"reason {hf}"))

    with StubAnthropic(respond) as stub:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        root = make_repo(tmp_path / "repo")
        clock = FakeClock()
        backend = InMemoryBackend(clock=clock.seconds)
        step = Step(root=root, backend=backend, proposer=ClaudeProposer(clock=clock), forge=FileForge(root), clock=clock)
        said = step.run().events
        clock.advance(900)
        (job_id,) = backend.jobs
        backend.advance(job_id, JobStage.ERROR, duration_s=60, logs=printed_by_a_job(secrets), message="exit code 1")
        said += step.run().events
        sent = json.dumps(stub.requests)
    notes = list((root / "runs" / "research").glob("*.md"))
    assert notes and "Found a recipe" in notes[0].read_text()
    assert len(stub.requests) >= 3
    assert leaks(sent, secrets) == [], "a secret was sent to the LLM"
    assert scan(root, secrets) == {} and leaks("\n".join(said), secrets) == []


# --- the Actions log -----------------------------------------------------------------------------------------


def test_the_actions_log_masks_every_token_before_anything_prints(tmp_path, secrets, monkeypatch, capsys):
    from mlr_action.github import action

    isolate_git(monkeypatch, tmp_path)
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    train = ("import os, sys\nfor n in ('HF_TOKEN', 'GITHUB_TOKEN', 'ANTHROPIC_API_KEY'):\n    print(n, os.environ.get(n))\n"
             "sys.exit('crashed holding ' + os.environ['HF_TOKEN'])\n")
    program = program_text(with_(ENVELOPE, max_jobs=1, allowed_flavors=["cpu-basic"], max_timeout="5m", max_walltime="1h"),
                           with_(OPEN, flavor="cpu-basic", timeout="1m"))
    origin = make_origin(tmp_path, {"program.md": program, "train.py": train})
    work = clone(origin, tmp_path / "work")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"full_name": "me/repo", "default_branch": "main", "fork": False}}))
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    env = {"GITHUB_EVENT_NAME": "schedule", "GITHUB_EVENT_PATH": str(event), "GITHUB_REF": "refs/heads/main",
           "GITHUB_WORKSPACE": str(work), "GITHUB_REPOSITORY": "me/repo", "GITHUB_OUTPUT": str(outputs),
           "GITHUB_STEP_SUMMARY": str(summary), "INPUT_BACKEND": "local", "INPUT_PROPOSER": "search",
           "INPUT_FORGE": "none", "INPUT_GITHUB_TOKEN": secrets["GITHUB_TOKEN"]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = ""
    deadline = time.monotonic() + 25
    while True:
        capsys.readouterr()
        code = action.main([])
        printed = capsys.readouterr().out
        out += printed
        masks = [line for line in printed.splitlines() if line.startswith("::add-mask::")]
        assert printed.splitlines()[:len(masks)] == masks, "something printed before the tokens were masked"
        assert {m.removeprefix("::add-mask::") for m in masks} == set(secrets.values())
        ledger = git(origin, "show", "main:runs/ledger.jsonl", check=False)
        if code == 0 and '"status": "error"' in ledger:
            break
        assert code in (0, 1) and time.monotonic() < deadline, printed
        time.sleep(0.2)
    unmasked = "\n".join(line for line in out.splitlines() if not line.startswith("::add-mask::"))
    assert "crashed holding ***" in ledger, ledger
    assert leaks(unmasked, secrets) == [], "a token reached the Actions log unmasked"
    assert leaks(summary.read_text() + outputs.read_text(), secrets) == []
    assert leaks(git(origin, "log", "--format=%B", "main") + ledger, secrets) == []
    assert scan(work, secrets) == {}


# --- every disguise of a token, through the action: real jobs, the real git sync, a loopback GitHub ---------------
#
# The jobs print the step's own tokens (opaque ones: only the environment says they are secret) base64- and
# hex-encoded, percent- and backslash-escaped, and wrapped across lines, then fail, so their log tails reach the
# ledger, the summary, the dashboard, the stop report, the commit messages, the step summary and the log. The
# oracle (tests/disguises.py) decodes everything in what the bot wrote and looks for any 16 bytes of a token.

TAIL_CHARS = 700  # what fits in the log tail a failed job's row keeps (mlr_action.core.metric.log_tail)


def _chunks(lines: list[str]) -> list[list[str]]:
    chunks: list[list[str]] = [[]]
    for line in lines:
        if chunks[-1] and sum(len(x) + 1 for x in chunks[-1]) + len(line) > TAIL_CHARS:
            chunks.append([])
        chunks[-1].append(line)
    return chunks


def _disguised_lines(secrets: dict[str, str]) -> list[str]:
    basic = [line for line in disguises(secrets["GITHUB_TOKEN"]) if line.startswith("Authorization")]
    return disguises(secrets["HF_TOKEN"]) + basic


DISGUISED_TRAIN = SOURCE + '''
import os, sys
secrets = {n: os.environ[n] for n in ("HF_TOKEN", "GITHUB_TOKEN", "ANTHROPIC_API_KEY")}
basic = [line for line in disguises(secrets["GITHUB_TOKEN"]) if line.startswith("Authorization")]
lines, chunks = disguises(secrets["HF_TOKEN"]) + basic, [[]]
for line in lines:
    if chunks[-1] and sum(len(x) + 1 for x in chunks[-1]) + len(line) > %d:
        chunks.append([])
    chunks[-1].append(line)
print("\\n".join(chunks[(int(os.environ["MLR_ITER"]) - 1) %% len(chunks)]), flush=True)
sys.exit(1)
''' % TAIL_CHARS


@dataclass
class Written:
    """Everything the bot wrote in one campaign, by sink."""

    sinks: dict[str, str]
    secrets: dict[str, str]
    ledger: str


@pytest.fixture(scope="module")
def disguised_campaign(tmp_path_factory) -> Written:
    from loopback.github_server import FakeGitHub
    from mlr_action.github import action

    secrets = dict(OPAQUE)
    jobs = len(_chunks(_disguised_lines(secrets)))
    tmp = tmp_path_factory.mktemp("disguised")
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp, tmp)
        for name, value in secrets.items():
            mp.setenv(name, value)
        program = program_text(
            with_(ENVELOPE, max_jobs=jobs, max_parallel=jobs, allowed_flavors=["cpu-basic"], max_timeout="5m", max_walltime="1h"),
            with_(OPEN, flavor="cpu-basic", timeout="1m"))
        origin = make_origin(tmp, {"program.md": program, "train.py": DISGUISED_TRAIN})
        work = clone(origin, tmp / "work")
        event = tmp / "event.json"
        event.write_text(json.dumps({"repository": {"full_name": "octo/sweep", "default_branch": "main", "fork": False}}))
        summary, outputs = tmp / "step-summary.md", tmp / "outputs"
        with FakeGitHub(token=secrets["GITHUB_TOKEN"]) as gh:
            env = {"GITHUB_EVENT_NAME": "schedule", "GITHUB_EVENT_PATH": str(event), "GITHUB_REF": "refs/heads/main",
                   "GITHUB_WORKSPACE": str(work), "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary),
                   "INPUT_BACKEND": "local", "INPUT_PROPOSER": "search", "INPUT_FORGE": "github",
                   "INPUT_GITHUB_TOKEN": secrets["GITHUB_TOKEN"], **gh.env()}
            for name, value in env.items():
                mp.setenv(name, value)
            log, deadline = [], time.monotonic() + 60
            while True:
                out, err = io.StringIO(), io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    code = action.main([])
                log.append(out.getvalue() + err.getvalue())
                ledger = git(origin, "show", "main:runs/ledger.jsonl", check=False)
                if '"event": "stopped"' in ledger:
                    break
                assert code in (0, 1) and time.monotonic() < deadline, log[-1]
                time.sleep(0.1)
            issues = "\n".join(f"{i['title']}\n{i['body']}" for i in gh.issues.values())
            comments = "\n".join(c["body"] for c in gh.comments.values())
            requests = "\n".join(gh.bodies)
    objects = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=origin, capture_output=True).stdout
    tree = {p.relative_to(work).as_posix(): p.read_text(errors="replace") for p in work.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(work).parts and not RAW_JOB_OUTPUT.search(p.as_posix())}
    printed = "\n".join(line for line in "".join(log).splitlines() if not line.startswith("::add-mask::"))
    return Written(secrets=secrets, ledger=ledger, sinks={
        "ledger": ledger,
        "summary.md": git(origin, "show", "main:runs/summary.md"),
        "commit messages": git(origin, "log", "--format=%B", "main"),
        "git objects of the remote": objects.decode("utf-8", "replace"),
        "work tree": "\n".join(f"{path}\n{text}" for path, text in tree.items()),
        "issues": issues,
        "comments": comments,
        "every body and title sent to GitHub": requests,
        "step summary": summary.read_text(),
        "step outputs": outputs.read_text(),
        "Actions log": printed,
    })


def test_the_disguised_campaign_ran_and_failed_every_job(disguised_campaign, tmp_path):
    (tmp_path / "ledger.jsonl").write_text(disguised_campaign.ledger)
    state = fold(read_ledger(tmp_path / "ledger.jsonl"))
    errors = [e for e in state.experiments.values() if e.status == "error"]
    assert len(errors) == len(_chunks(_disguised_lines(disguised_campaign.secrets))) and state.stopped is not None
    assert all("***" in e.error for e in errors), "the tails were recorded, masked"
    assert disguised_campaign.sinks["issues"] and disguised_campaign.sinks["comments"]


SINKS = ["ledger", "summary.md", "commit messages", "git objects of the remote", "work tree", "issues", "comments",
         "every body and title sent to GitHub", "step summary", "step outputs", "Actions log"]


@pytest.mark.parametrize("sink", SINKS)
def test_no_disguise_of_a_token_reaches(disguised_campaign, sink):
    assert exposed(disguised_campaign.sinks[sink], disguised_campaign.secrets) == []


@pytest.mark.parametrize("forge", ["none", "github"])
def test_an_hf_error_that_echoes_the_token_in_disguise_reaches_no_escalation(tmp_path, forge, monkeypatch):
    pytest.importorskip("huggingface_hub")
    from loopback.github_server import FakeGitHub
    from loopback.hf_server import FakeHubServer
    from mlr_action.backends import _hf_http
    from mlr_action.backends.hf import HfBackend
    from mlr_action.github.forge import GitHubForge

    secrets = dict(OPAQUE)
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    echoed = " ".join(line for line in disguises(secrets["HF_TOKEN"]) if "\n" not in line)  # one header line
    root = make_repo(tmp_path / "repo")
    clock = FakeClock()
    with FakeHubServer(token=secrets["HF_TOKEN"], clock=clock.seconds) as hub, FakeGitHub(token=secrets["GITHUB_TOKEN"]) as gh:
        hub.fail("POST", r"^/api/jobs/me$", 400, message=f"token rejected: {echoed}", times=5)
        backend = HfBackend(endpoint=hub.url, policy=_hf_http.Policy(backoff_s=0.0, timeout_s=5.0, sleep=lambda s: None))
        sink = FileForge(root) if forge == "none" else GitHubForge(
            root, env=gh.env(), clock=clock, throttle=False, backoff=0, publish_runs=lambda root, message: None)
        result = Step(root=root, backend=backend, proposer=SearchProposer(), forge=sink, clock=clock).run()
        written = "\n".join(f"{i['title']}\n{i['body']}" for i in gh.issues.values()) + "\n".join(gh.bodies)
    written += "\n".join(p.read_text() for p in (root / "runs").rglob("*") if p.is_file())
    assert result.exit_code == 2 and "token rejected: " in written  # the escalation quotes the error
    assert exposed(written, secrets) == [] and exposed("\n".join(result.events), secrets) == []


@pytest.mark.parametrize("kind", ["base64", "hex", "wrapped"])
def test_a_token_pasted_into_program_md_in_disguise_is_refused(tmp_path, secrets, capsys, kind):
    import base64

    from mlr_action.commands.cli import main

    value = secrets["HF_TOKEN"]
    pasted = {"base64": base64.b64encode(value.encode()).decode(), "hex": value.encode().hex(),
              "wrapped": value[:12] + "\n  " + value[12:]}[kind]
    root = make_repo(tmp_path / "repo")
    text = (root / "program.md").read_text().replace("Be accurate.", f"Be accurate. Auth: {pasted}")
    (root / "program.md").write_text(text)
    assert main(["validate", "--program", str(root / "program.md")]) == 2
    out = capsys.readouterr()
    assert "holds what looks like a token" in out.err and exposed(out.out + out.err, secrets) == []
