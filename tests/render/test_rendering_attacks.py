"""Text a job, an LLM, a web page or the ledger branch controls is shown, never rendered (issue 10, class 5).

The attacks: a job prints Markdown and HTML after its metric line and in the
tail of a failing log, and a ``hub_url`` off the Hub; the proposer's
hypothesis and reason carry the same; a web page the researcher reads has a
``javascript:`` URL and a hostile title; a ledger-branch writer puts it in
every string field of the ledger. Each rendered page (runs/summary.md, the
dashboard issue, the stop report, escalations, research notes, the Actions
step summary) is parsed with markdown-it (tables on, as GFM) and the hostile
text may appear only inside code: no link, image, HTML, comment, heading or
text that GitHub would autolink or turn into a mention or reference comes
from it, and every table row keeps its cells.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markdown_it.rules_block.table import escapedSplit

from mlr_action.core.jobs import JobStage
from mlr_action.backends.memory import InMemoryBackend
from mlr_action.github.dashboard import read_checkbox, read_shown
from mlr_action.core.ledger import EventRow, ExperimentRow, read_ledger
from mlr_action.core.proposal import Proposal
from mlr_action.proposers.search import SearchProposer
from mlr_action.core.state import fold
from mlr_action.shell.step import Step
from programs import CAMPAIGN, ENVELOPE, program_text, with_
from simulate import FakeClock

HOSTILE = [  # what a job prints, an LLM answers or a web page says, one line each
    "![x](https://evil.example/pixel)",
    "<img src=x onerror=alert(1)>",
    "<!-- --> <!-- mlr-action:reply 4242 -->",
    "@octocat look here",
    "| broken | table |",
    "](http://phish.example) [click me](http://phish.example/login)",
    "<https://evil.example/autolink> https://evil.example/bare www.evil.example",
    "# Injected heading",
    "fixes #4242 and GH-4242",
    "``` ~~~",
    "<details><summary>open me</summary>",
    "- [x] Pause the campaign",
    "hub_url=https://evil.example/",
]
ONE_LINE = " ".join(HOSTILE)
# Words that only the hostile text holds: outside code, any of them is a leak into rendered Markdown.
MARKERS = ("evil.example", "phish", "octocat", "onerror", "javascript", "broken", "injected", "4242", "<details",
           "open me", "pixel", "click me")
OWN_HTML = re.compile(r"<sub>|</sub>|<details>|</details>|<summary>[A-Za-z. ]*</summary>|<!-- mlr-action:[a-z-]+(?::[a-z-]+)?(?: [^<>\n]*)? -->")
OWN_LINK = re.compile(r"research/\d{3}\.md")
MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def rendered_from_outside(markdown: str) -> list[str]:
    """Every place where hostile text would render: outside code, in a link, an image or HTML; broken table rows."""
    found: list[str] = []
    lines = markdown.splitlines()

    def walk(tokens) -> None:
        for tok in tokens:
            if tok.type in ("code_inline", "code_block"):
                continue
            if tok.type == "inline":
                walk(tok.children or [])
                continue
            if tok.type in ("html_inline", "html_block"):
                if OWN_HTML.fullmatch(tok.content.strip()):
                    continue  # the bot's own tag, or its own hidden comment: no "<" or ">" inside, so it ends where it should
                found.append(f"{tok.type}: {tok.content.strip()!r}")
            if tok.type == "image":
                found.append(f"image: {tok.attrs}")
            if tok.type == "link_open" and not OWN_LINK.fullmatch(str(tok.attrs.get("href", ""))):
                found.append(f"link: {tok.attrs}")
            if tok.type == "fence":
                closing = lines[tok.map[1] - 1].strip() if tok.map[1] - tok.map[0] >= 2 else ""
                if not (closing.startswith(tok.markup) and not closing.strip(tok.markup[0])):
                    found.append(f"a code fence that is never closed: {tok.content[:80]!r}")
                continue
            said = (tok.content + " " + " ".join(map(str, (tok.attrs or {}).values()))).lower()
            found.extend(f"{tok.type} holds {m!r}: {tok.content!r}" for m in MARKERS if m in said)
            walk(tok.children or [])

    tokens = MD.parse(markdown)
    walk(tokens)
    for i, tok in enumerate(tokens):
        if tok.type == "table_open":
            header = len(escapedSplit(lines[tok.map[0]].strip().strip("|")))
            for line in lines[tok.map[0] + 2: tok.map[1]]:
                if len(escapedSplit(line.strip().strip("|"))) != header:
                    found.append(f"table row with the wrong number of cells: {line!r}")
    return found


def test_the_oracle_sees_each_attack_when_it_is_not_escaped():
    for line in HOSTILE[:-2]:  # the last two only matter in context (a dashboard, a log)
        if line.startswith("```"):
            assert rendered_from_outside(f"a\n\n{line}\n\nb\n"), line
            continue
        assert rendered_from_outside(line) or rendered_from_outside(f"| a |\n|---|\n| {line} |"), line
    table = "| a | b |\n|---|---|\n| `x\\|y` | z |\n"
    assert rendered_from_outside(table) == []
    assert rendered_from_outside("| a | b |\n|---|---|\n| x | broken | table |\n")


# --- a job's output and the proposer's words, through real steps --------------------------------------------

TRAIN = '''\
import os, sys
HOSTILE = %r
it = int(os.environ["MLR_ITER"])
if it == 1:  # completes: an off-Hub hub_url, then Markdown after the metric line
    print("hub_url=https://evil.example/model")
    print("eval_accuracy=0.5 ![x](https://evil.example/pixel)")
    print("\\n".join(HOSTILE))
elif it == 2:  # completes: a javascript: hub_url
    print("eval_accuracy=0.6")
    print("hub_url=javascript:alert(document.cookie)//huggingface.co/x")
else:  # fails: its log tail is recorded as the error
    print("\\n".join(HOSTILE))
    sys.exit(1)
''' % (HOSTILE,)


class HostileProposer(SearchProposer):
    """Search, but the hypothesis and the reason are what a hostile LLM answer would say; one config value too."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def propose(self, *, program, state, count: int, check=None, used=None, prices=None) -> list[Proposal]:
        self.calls += 1
        found = super().propose(program=program, state=state, count=count, check=check, used=used, prices=prices)
        found = [p.model_copy(update={"hypothesis": ONE_LINE, "reason": ONE_LINE}) for p in found]
        if self.calls == 2 and found:  # refused by the validator: the envelope-breach report quotes the value
            found[0] = found[0].model_copy(update={"config": {**found[0].config, "scheduler": ONE_LINE}})
        return found


@pytest.fixture(scope="module")
def job_campaign(tmp_path_factory):
    """Four real local jobs (two complete, two fail), reported on a loopback GitHub; what the bot wrote."""
    from loopback.github_server import FakeGitHub
    from mlr_action.github.action_step import render_step_summary
    from mlr_action.backends.local import LocalBackend
    from mlr_action.github.forge import GitHubForge
    from mlr_action.render.views import campaign_status

    root = tmp_path_factory.mktemp("jobs") / "repo"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / "program.md").write_text(program_text(
        with_(ENVELOPE, max_jobs=4, max_parallel=3, allowed_flavors=["cpu-basic"], max_timeout="5m", max_walltime="1h"),
        with_(CAMPAIGN, target=None, patience=None, flavor="cpu-basic", timeout="1m")))
    clock = FakeClock()
    backend = LocalBackend(root)
    events = []
    with FakeGitHub() as gh:
        forge = GitHubForge(root, env=gh.env(), clock=clock, throttle=False, backoff=0, publish_runs=lambda root, message: None)
        step = Step(root=root, backend=backend, proposer=HostileProposer(), forge=forge, clock=clock)
        deadline = time.monotonic() + 30
        while True:
            result = step.run()
            events += result.events
            state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
            if result.stopped:
                break
            assert time.monotonic() < deadline, events
            clock.advance(60)
            while any(not backend.inspect(job_id=e.job_id).stage.terminal for e in state.in_flight if e.job_id):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        dashboard = next(i for i in gh.issues.values() if "mlr-dashboard" in [l["name"] for l in i["labels"]])
        escalations = [b for b in gh.bodies if "<!-- mlr-action:escalation:" in b]  # every version written
        comments = [c["body"] for c in gh.comments.values()]
    status = campaign_status(root, root / "program.md")
    return {
        "state": state,
        "summary.md": (root / "runs" / "summary.md").read_text(),
        "dashboard": dashboard["body"],
        "dashboard title": dashboard["title"],
        "stop report": next(c for c in comments if "mlr-action:stop-report" in c),
        "escalation": "\n".join(escalations),
        "step summary": render_step_summary(status, events, 0, dry=False, why=[]),
    }


def test_the_jobs_ran_as_planned(job_campaign):
    state = job_campaign["state"]
    statuses = {e.iter: e.status for e in state.experiments.values()}
    assert statuses[1] == statuses[2] == "completed" and "error" in statuses.values(), statuses
    assert any("broken" in (e.error or "") for e in state.experiments.values())  # the tail was recorded
    assert "outside the search space" in job_campaign["escalation"]


def test_an_off_hub_hub_url_is_dropped_with_a_note(job_campaign):
    state = job_campaign["state"]
    for iteration in (1, 2):
        row = state.experiments[iteration]
        assert row.hub_url is None, row.hub_url
        assert "not an https URL on the Hub" in getattr(row, "hub_url_note", ""), row


@pytest.mark.parametrize("page", ["summary.md", "dashboard", "stop report", "escalation", "step summary"])
def test_job_output_and_hypotheses_are_shown_never_rendered(job_campaign, page):
    text = job_campaign[page]
    assert text.strip()
    assert rendered_from_outside(text) == [], text


def test_the_dashboard_controls_and_markers_cannot_be_spoofed_by_shown_text(job_campaign):
    body = job_campaign["dashboard"]
    assert read_checkbox(body) is False and read_shown(body) is not None
    for page in ("dashboard", "stop report", "escalation"):
        assert "<!-- mlr-action:reply" not in job_campaign[page]
    assert rendered_from_outside(job_campaign["dashboard title"]) == []


# --- an LLM's answers and the web pages its researcher reads ---------------------------------------------------


def test_llm_answers_and_research_notes_are_shown_never_rendered(tmp_path, monkeypatch):
    from loopback.anthropic_stub import StubAnthropic, search_turn, structured
    from claude_helpers import FAKE_KEY, answer
    from loopback.github_server import FakeGitHub
    from mlr_action.github.forge import GitHubForge
    from mlr_action.proposers.claude import ClaudeProposer

    sources = [("Hostile <img src=x onerror=alert(1)> [click me](http://phish.example)", "javascript:alert(1)"),
               ("](http://phish.example) @octocat", "https://evil.example/page?q=<b>x</b>"),
               ("A fine title", "https://evil.example/recipe")]
    findings = "\n".join(HOSTILE) + "\n\n| Source | Recipe |\n|---|---|\n| [x](https://evil.example) | lr 3e-4 |\n"

    def respond(body):
        if body.get("tools"):
            return search_turn(sources, findings)
        return structured(answer(hypothesis=ONE_LINE, reason=ONE_LINE))

    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    root = tmp_path / "repo"
    root.mkdir()
    (root / "train.py").write_text("print('eval_accuracy=0.5')\n")
    (root / "program.md").write_text(program_text(with_(ENVELOPE, max_jobs=2), with_(CAMPAIGN, target=None, patience=None)))
    clock = FakeClock()
    backend = InMemoryBackend(clock=clock.seconds)
    with StubAnthropic(respond) as stub, FakeGitHub() as gh:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        forge = GitHubForge(root, env=gh.env(), clock=clock, throttle=False, backoff=0, publish_runs=lambda root, message: None)
        step = Step(root=root, backend=backend, proposer=ClaudeProposer(clock=clock), forge=forge, clock=clock)
        for _ in range(4):
            step.run()
            clock.advance(900)
            for job in list(backend.jobs.values()):
                if not job.stage.terminal:
                    backend.advance(job.job_id, JobStage.COMPLETED, duration_s=60, logs="eval_accuracy=0.7\n")
        dashboard = next(i["body"] for i in gh.issues.values() if "mlr-dashboard" in [l["name"] for l in i["labels"]])
    notes = sorted((root / "runs" / "research").glob("*.md"))
    state = fold(read_ledger(root / "runs" / "ledger.jsonl"))
    assert notes and "evil.example/recipe" in notes[0].read_text()  # the sources are listed, as text
    assert any(e.hypothesis.startswith(HOSTILE[0]) for e in state.experiments.values())  # kept (cut to 300 characters)
    for page in [*(n.read_text() for n in notes), (root / "runs" / "summary.md").read_text(), dashboard]:
        assert rendered_from_outside(page) == [], page


# --- a hostile ledger: every string field, rendered by each writer ---------------------------------------------


def hostile_state():
    rows = [
        EventRow(event="started", ts="2026-01-01T00:00:00+00:00", campaign=ONE_LINE),
        ExperimentRow(iter=1, ts=ONE_LINE, status="completed", hypothesis=ONE_LINE, config={"lr": ONE_LINE},
                      job_id=ONE_LINE, metric=0.9, hub_url="javascript:alert(1)", decision="keep", best_so_far=0.9,
                      timeout="1h", flavor=ONE_LINE, duration_s=60.0, output_repo=ONE_LINE),
        ExperimentRow(iter=2, ts="2026-01-01T00:01:00+00:00", status="error", hypothesis=ONE_LINE, config={"lr": 0.001},
                      job_id="job-2", error="exit code 1\n" + "\n".join(HOSTILE), decision="discard", timeout="1h",
                      flavor="a10g-large", duration_s=60.0, hub_url="https://evil.example/x"),
        ExperimentRow(iter=3, ts="2026-01-01T00:02:00+00:00", status="submitted", config={"lr": 0.001}, job_id=ONE_LINE,
                      timeout="90m", flavor=ONE_LINE, hypothesis=ONE_LINE),
        EventRow(event="llm", ts="2026-01-01T00:03:00+00:00", reason="fallback", detail=ONE_LINE, model=ONE_LINE, llm_usd=0.01),
        EventRow(event="research", ts="2026-01-01T00:03:00+00:00", reason=ONE_LINE, detail=ONE_LINE, model=ONE_LINE),
        EventRow(event="research", ts="2026-01-01T00:03:00+00:00", reason="done", note=ONE_LINE, after=1),
        EventRow(event="stopped", ts=ONE_LINE, reason=ONE_LINE + " -->", detail=ONE_LINE),
    ]
    return fold(rows)


def _program(tmp_path: Path):
    from mlr_action.core.program import load_program

    (tmp_path / "program.md").write_text(program_text(ENVELOPE, CAMPAIGN))
    (tmp_path / "train.py").write_text("")
    return load_program(tmp_path / "program.md")


def _renderings(tmp_path: Path) -> dict[str, str]:
    from mlr_action.core.budget import usage
    from mlr_action.github.dashboard import dashboard_title, render_dashboard, shown_for
    from mlr_action.github.messages import stop_report_marker
    from mlr_action.render.reports import render_escalation, render_stop_report
    from mlr_action.render.summary import render_summary

    program, state = _program(tmp_path), hostile_state()
    used = usage(state)
    now = "2026-01-02T00:00:00Z"
    title, body = render_stop_report(program=program, state=state, used=used, now=now)
    _, escalation = render_escalation(kind="unrecoverable-error", problems=HOSTILE, detail="\n".join(HOSTILE), now=now)
    return {
        "summary": render_summary(program=program, state=state, used=used, now=now, prices_note=ONE_LINE),
        "dashboard": render_dashboard(program=program, state=state, used=used, shown=shown_for(state, seen=0),
                                      checkbox=False, now=now),
        "dashboard title": dashboard_title(program, state),
        "stop report": f"## {title}\n\n{body}\n{stop_report_marker(state.stopped.ts, state.stopped.reason)}\n",
        "escalation": escalation,
    }


@pytest.mark.parametrize("page", ["summary", "dashboard", "dashboard title", "stop report", "escalation"])
def test_a_hostile_ledger_is_shown_never_rendered(tmp_path, page):
    text = _renderings(tmp_path)[page]
    assert rendered_from_outside(text) == [], text
    assert "<!-- mlr-action:reply" not in text


def test_the_dashboard_marker_survives_a_hostile_stop_reason(tmp_path):
    body = _renderings(tmp_path)["dashboard"]
    shown = read_shown(body)
    assert shown is not None and shown.reason == ONE_LINE + " -->"
    marker = body.split("\n", 1)[0]
    assert marker.startswith("<!-- mlr-action:dashboard {") and marker.endswith("} -->") and marker.count("-->") == 1


def test_a_research_note_shows_its_sources_and_findings_as_text():
    from mlr_action.proposers.research import SearchOutcome, render_note

    outcome = SearchOutcome(text="\n".join(HOSTILE), sources=[(ONE_LINE, "javascript:alert(1)"),
                                                                (ONE_LINE, "https://evil.example/p?a=(b)")], searches=1)
    note = render_note(number=1, model=ONE_LINE, finished=0, why="the campaign starts", outcome=outcome, ts=ONE_LINE)
    assert rendered_from_outside(note) == [], note
    assert "https://evil.example/p?a=(b)" in note and "javascript:alert(1)" not in note  # only http(s) sources are listed


def test_commit_messages_mention_and_reference_nothing(tmp_path, monkeypatch):
    from gitrepos import clone, git, isolate_git, make_origin
    from mlr_action.github.gitsync import publish_runs

    isolate_git(monkeypatch, tmp_path)
    origin = make_origin(tmp_path, {"program.md": "x\n"})
    work = clone(origin, tmp_path / "work")
    (work / "runs").mkdir()
    (work / "runs" / "summary.md").write_text("x\n")
    assert publish_runs(work, message="mlr: iter 3 failed: fixes #4242, closes GH-4243 (@octocat)\n\n- resolves #4244\n")
    message = git(origin, "log", "-1", "--format=%B", "main")
    assert not re.search(r"#\d|GH-\d|@\w", message, re.I), message
    assert "fixes # 4242" in message and "@ octocat" in message


# --- hub_url: an https URL on the Hub, or nothing ------------------------------------------------------------------

HUB_URLS = {
    "https://huggingface.co/me/sweep-1": True,
    "https://hf.co/me/sweep-1": True,
    "https://HuggingFace.co/me/sweep-1?revision=main#files": True,
    "https://huggingface.co:443/me/x": True,
    "http://huggingface.co/me/x": False,  # not https
    "https://evil.example/": False,
    "javascript:alert(1)//huggingface.co/x": False,
    "https://huggingface.co@evil.example/": False,  # a user name: the host is evil.example
    "https://user:pw@huggingface.co/x": False,
    "https://huggingface.co.evil.example/x": False,
    "https://evil.example/huggingface.co": False,
    "https://huggingface.co:8443/x": False,
    "https://huggingface.co\\@evil.example/": False,  # a backslash, which browsers read as a slash
    "https://huggingface.co/x`<img>": False,
    "//huggingface.co/x": False,
    "https://huggingface.co/" + "a" * 3000: False,
}


@pytest.mark.parametrize("url, kept", HUB_URLS.items(), ids=[u[:40] for u in HUB_URLS])
def test_only_an_https_hub_url_is_kept(monkeypatch, url, kept):
    from mlr_action.core.metric import read_metric

    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    reading = read_metric(f"hub_url={url}\neval_accuracy=0.5\n", "eval_accuracy")
    assert reading.value == 0.5
    assert (reading.hub_url == url) is kept and (reading.hub_url is None) is (not kept)
    assert (reading.hub_url_note is None) is kept
    if not kept:
        assert "was not recorded" in reading.hub_url_note


def test_the_last_hub_url_line_decides_and_hf_endpoint_is_the_hub_too(monkeypatch):
    from mlr_action.core.metric import read_metric

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:8123/")
    logs = "hub_url=https://huggingface.co/me/a\nhub_url: http://127.0.0.1:8123/me/b\neval_accuracy=0.5\n"
    assert read_metric(logs, "eval_accuracy").hub_url == "http://127.0.0.1:8123/me/b"
    assert read_metric(logs.replace(":8123/me/b", ":8124/me/b"), "eval_accuracy").hub_url is None  # another port
    dropped = read_metric(logs + "hub_url=https://evil.example/x\n", "eval_accuracy")
    assert dropped.hub_url is None and "evil.example" in dropped.hub_url_note  # the last line wins, even a bad one


# --- the terminal and the Actions log ---------------------------------------------------------------------------


def test_what_a_step_says_and_mlr_status_carry_no_terminal_escapes(tmp_path):
    from mlr_action.render.views import describe_row, render_status

    program = _program(tmp_path)
    hostile = "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07 \x1b[2J\x1b[H\rfake line\n::error::forged"
    failed = ExperimentRow(iter=3, ts="t", status="error", error=hostile, job_id="j")
    stopped = EventRow(event="stopped", ts="t", reason="human", detail=hostile)
    said = [describe_row(program, failed), describe_row(program, stopped)]
    status = {"state": "stopped", "campaign": "c", "stop_reason": "human", "stop_detail": hostile, "jobs_used": 1,
              "jobs_max": 2, "walltime_used_s": 0, "walltime_max_s": 60, "cost_used_usd": 0.0, "cost_max_usd": None,
              "best_metric": None, "in_flight_jobs": []}
    for text in [*said, render_status(status)]:
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), repr(text)
    assert all("\n" not in line for line in said) and said[0].startswith("iter 3 failed: ")
