"""The program.md comment on a pull request: its text, and one comment edited in place over loopback."""

from __future__ import annotations

import re
from html import escape

import pytest

from loopback.comment_server import CommentServer
from mlr_action.core.markup import literal
from mlr_action.github.pr_comment import MARKER, CommentError, upsert_comment
from mlr_action.github.pr_comment_body import Baseline, FileChanges, envelope_changes, program_changes, render_validation
from mlr_action.core.program import parse_program
from programs import CAMPAIGN, ENVELOPE, program_text, with_


def program(**envelope):
    return parse_program(program_text(with_(ENVELOPE, **envelope), CAMPAIGN))


def test_a_valid_program_says_merging_approves_and_shows_the_worst_case():
    body = render_validation(path="program.md", program=program(), sha="abcdef123456")
    assert body.startswith(MARKER)
    assert "merging this pull request approves this budget" in body
    assert "at most 12 jobs, 8h of job walltime" in body
    assert "max_timeout" in body and "abcdef1" in body


def test_changes_against_the_approved_envelope_are_listed():
    approved, proposed = program(), program(max_jobs=20, max_walltime="10h")
    assert envelope_changes(approved, proposed)[:2] == ["`max_jobs`: `12` → `20`", "`max_walltime`: `8h` → `10h`"]
    assert envelope_changes(approved, proposed)[2].startswith("worst case: 8h")
    body = render_validation(path="program.md", program=proposed, approved=approved, base="main")
    assert "**Changes against the program approved on `main`**" in body
    assert "- Budget envelope: `max_jobs`: `12` → `20`" in body
    same = render_validation(path="program.md", program=approved, approved=approved, base="main")
    assert "Nothing that can cost money or change what runs differs from the program approved on `main`." in same
    first = render_validation(path="program.md", program=approved, base="main")
    assert "has no approved program.md yet" in first


def test_an_invalid_program_lists_every_problem_in_a_fence_that_cannot_be_broken():
    body = render_validation(path="program.md", problems=["max_jobs: must be > 0", "weird ``` backticks"])
    assert "❌ `program.md` is not valid" in body
    assert "- max_jobs: must be > 0" in body
    assert "````text" in body  # a longer fence than any backticks inside


def test_one_comment_is_created_then_edited_in_place():
    with CommentServer(page_size=2) as server:
        server.add(7, "a person's comment", bot=False)
        server.add(7, f"{MARKER} quoted by a person", bot=False)  # not ours: a person wrote it
        server.add(7, "another", bot=False)
        kwargs = dict(api_url=server.url, repo="me/repo", number=7, token="t0ken")
        assert upsert_comment(body=f"{MARKER}\nfirst", **kwargs) == "created"
        assert upsert_comment(body=f"{MARKER}\nfirst", **kwargs) == "unchanged"
        assert upsert_comment(body=f"{MARKER}\nsecond", **kwargs) == "updated"
        ours = [c for c in server.comments[7] if c["user"]["type"] == "Bot"]
        assert [c["body"] for c in ours] == [f"{MARKER}\nsecond"]
        assert len(server.comments[7]) == 4
        assert any("page=2" in path for _, path, _ in server.requests)  # it read past the first page


def test_a_read_only_token_says_what_happened_and_what_to_do():
    with CommentServer(deny=True) as server:
        with pytest.raises(CommentError, match="fork"):
            upsert_comment(api_url=server.url, repo="me/repo", number=1, token="t0ken", body=MARKER)
    with pytest.raises(CommentError, match="no github-token"):
        upsert_comment(api_url="http://127.0.0.1:9", repo="me/repo", number=1, token="", body=MARKER)


def test_an_unreachable_api_is_an_error_with_no_token_in_it():
    with pytest.raises(CommentError) as caught:
        upsert_comment(api_url="http://127.0.0.1:9", repo="me/repo", number=1, token="s3cret-token", body=MARKER)
    assert "s3cret-token" not in str(caught.value)


# --- review shows everything that can cost money or change what runs (issue 10, class 7) ------------------


def campaign(**changes):
    return parse_program(program_text(ENVELOPE, with_(CAMPAIGN, **changes)))


APPROVED = campaign(flavor="t4-small")
# A pull request that leaves the envelope alone and changes only the Campaign block: each change is in the comment.
CAMPAIGN_ONLY = {
    "a bigger flavor as the default": (dict(flavor="a10g-large"),
                                       "Campaign: `flavor` (each job's default): `t4-small` → `a10g-large`"),
    "the default flavor by dropping flavor:": (dict(flavor=...),
                                               "Campaign: `flavor` (each job's default): `t4-small` → `t4-small` (not set: the first of allowed_flavors)"),
    "a longer default timeout": (dict(flavor="t4-small", timeout="2h"), "Campaign: `timeout` (each job's default): `1h` → `2h`"),
    "the timeout left to max_timeout": (dict(flavor="t4-small", timeout=...),
                                        "Campaign: `timeout` (each job's default): `1h` → `2h` (not set: max_timeout)"),
    "a new namespace": (dict(flavor="t4-small", namespace="other-org"),
                        "Campaign: `namespace` (the Hugging Face account the jobs run in, and are billed to): not set → `other-org`"),
    "a different script": (dict(flavor="t4-small", script="other.py"), "Campaign: `script` (what every job runs): `train.py` → `other.py`"),
    "a wider search space": (dict(flavor="t4-small", params={**CAMPAIGN["params"], "lr": {"type": "float", "low": 1e-5, "high": 10.0}}),
                             "Campaign: `params.lr`: `{type: float, low: 1e-05, high: 0.001, log: true}` → "
                             "`{type: float, low: 1e-05, high: 10.0}`"),
    "a parameter added": (dict(flavor="t4-small", params={**CAMPAIGN["params"], "layers": {"type": "int", "low": 1, "high": 96}}),
                          "Campaign: `params.layers` added: `{type: int, low: 1.0, high: 96.0}`"),
    "a parameter removed": (dict(flavor="t4-small", params={"lr": CAMPAIGN["params"]["lr"]}),
                            "Campaign: `params.batch_size` removed (was `{type: int, low: 4.0, high: 64.0}`)"),
    "more epochs": (dict(flavor="t4-small", fixed={"epochs": 300}), "Campaign: `fixed.epochs`: `3` → `300`"),
    "a fixed argument added": (dict(flavor="t4-small", fixed={"epochs": 3, "max_steps": 10**9}),
                               "Campaign: `fixed.max_steps` added: `1000000000`"),
    "1 for true": (dict(flavor="t4-small", fixed={"epochs": 3.0}), "Campaign: `fixed.epochs`: `3` → `3.0`"),
    "the metric": (dict(flavor="t4-small", metric="train_accuracy"),
                   "Campaign: `metric` (what is optimised): `eval_accuracy` → `train_accuracy`"),
    "the direction": (dict(flavor="t4-small", direction="minimize"), "Campaign: `direction` (what counts as better): `maximize` → `minimize`"),
    "no target": (dict(flavor="t4-small", target=...), "Campaign: `target` (stops the campaign when reached): `0.95` → not set"),
    "more patience": (dict(flavor="t4-small", patience=50), "Campaign: `patience` (stops the campaign after this many experiments without "
                                                            "improvement): `3` → `50`"),
    "a new campaign id": (dict(flavor="t4-small", name="fresh-start"), "Campaign: `name` (the campaign id in the jobs' labels): not set → `fresh-start`"),
    "another seed": (dict(flavor="t4-small", seed=7), "Campaign: `seed` (which experiments the search proposes): `0` → `7`"),
}


@pytest.mark.parametrize("case", CAMPAIGN_ONLY, ids=list(CAMPAIGN_ONLY))
def test_a_pull_request_that_changes_only_the_campaign_shows_that_change(case):
    changes, line = CAMPAIGN_ONLY[case]
    proposed = campaign(**changes)
    assert proposed.envelope == APPROVED.envelope
    body = render_validation(path="program.md", program=proposed, approved=APPROVED, base="main")
    assert f"- {line}" in body, body
    assert "Nothing that can cost money" not in body


@pytest.mark.parametrize("changes, where", [
    (dict(flavor="t4-small", name="fresh-start"), "under the new campaign id"),
    (dict(flavor="t4-small", namespace="other-org"), "in the new namespace"),
    (dict(flavor="t4-small", name="fresh-start", namespace="other-org"), "under the new campaign id"),
])
def test_a_new_campaign_id_or_namespace_says_the_backends_count_of_spend_starts_afresh(changes, where):
    """The budget counts what the backend lists under the campaign's labels in its namespace: after such a
    merge the jobs run so far are counted only as the ledger records them. The reviewer is told so."""
    body = render_validation(path="program.md", program=campaign(**changes), approved=APPROVED, base="main")
    afresh = [line for line in body.splitlines() if "starts afresh" in line]
    assert afresh and all("only as the ledger" in line and "runs/ledger.jsonl" in line for line in afresh), body
    assert any(where in line for line in afresh), body
    unchanged = render_validation(path="program.md", program=campaign(flavor="t4-small", seed=7), approved=APPROVED,
                                  base="main")
    assert "starts afresh" not in unchanged


def test_reordering_allowed_flavors_shows_the_default_flavor_it_changes():
    approved = parse_program(program_text(ENVELOPE, with_(CAMPAIGN, flavor=...)))
    proposed = parse_program(program_text(with_(ENVELOPE, allowed_flavors=["a10g-large", "t4-small"]), with_(CAMPAIGN, flavor=...)))
    assert program_changes(approved, proposed) == [
        "Budget envelope: `allowed_flavors`: `[t4-small, a10g-large]` → `[a10g-large, t4-small]`",
        "Campaign: `flavor` (each job's default): `t4-small` (not set: the first of allowed_flavors) → "
        "`a10g-large` (not set: the first of allowed_flavors)",
    ]


def test_every_campaign_key_is_compared():
    """A key added to the Campaign model later is shown too: the comparison walks the model, not a list."""
    from mlr_action.core.program import Campaign

    shown = {"flavor": "flavor", "timeout": "timeout", "params": "params.lr", "fixed": "fixed.epochs",
             "final": "final.repeats"}
    values = {"metric": "loss", "direction": "minimize", "target": 0.5, "patience": 9, "script": "x.py", "name": "n1",
              "seed": 3, "namespace": "org", "flavor": "t4-small", "timeout": "30m", "scheduling_timeout": "45m", "image": "pytorch/pytorch:2.6",
              "dependencies": ["accelerate"], "python": "3.12",
              "params": {"lr": {"choices": [1, 2]}}, "fixed": {"epochs": 4}, "min_delta": 0.01,
              "final": {"repeats": 2, "seed_param": "seed"}}
    assert set(values) == set(Campaign.model_fields)
    for key, value in values.items():
        lines = program_changes(APPROVED, campaign(**{"flavor": "a10g-large", **{key: value}}) if key != "flavor"
                                else campaign(flavor="a10g-large"))
        assert any(f"`{shown.get(key, key)}`" in line for line in lines), (key, lines)


def test_the_training_script_and_the_files_next_to_it_are_named_when_they_change():
    files = FileChanges(script="train.py", script_status="changed", others=("utils.py", "data/prep.py"))
    body = render_validation(path="program.md", program=APPROVED, approved=APPROVED, base="main", files=files)
    assert "- the training script `train.py` itself changed: every job after the merge runs the new code" in body
    assert "- other files in the campaign folder changed (each job runs with the whole folder): `utils.py`, `data/prep.py`" in body
    added = render_validation(path="program.md", program=APPROVED, base="main",
                              files=FileChanges(script="evil.py", script_status="added"))
    assert "has no approved program.md yet" in added and "the training script `evil.py` is new in this pull request" in added


def test_a_base_that_cannot_be_read_is_said_never_shown_as_no_change():
    body = render_validation(path="program.md", program=APPROVED, baseline=Baseline("main", "unreadable", detail="fetch failed"))
    assert "**The program approved on `main` could not be read** (`fetch failed`), so the changes against it are **not** shown" in body
    invalid = render_validation(path="program.md", program=APPROVED, baseline=Baseline("main", "invalid", detail="max_jobs: bad"))
    assert "The program.md on `main` is not valid (`max_jobs: bad`), so nothing is approved there" in invalid


def test_a_pull_request_into_another_branch_does_not_claim_to_approve():
    body = render_validation(path="program.md", program=APPROVED, approved=APPROVED, base="main", target="dev")
    assert "is valid (this pull request merges into `dev`: the budget is approved only when it reaches `main`)" in body
    assert "merging this pull request approves" not in body


HOSTILE = ["<img src=x onerror=alert(1)>", "[click](https://evil.example)", "x` <b>bold</b> `y", "</details><script>s()</script>",
           "<!-- hidden -->", "line\n# heading", "@someone #1 :rocket:", "\u202egnp.exe"]


@pytest.mark.parametrize("value", HOSTILE)
def test_text_from_the_pull_request_is_shown_never_rendered(value):
    """Values, names and paths reach the comment as code: rendered, they are text inside <code>, never markup."""
    from markdown_it import MarkdownIt

    from mlr_action.core.program_model import ParamSpec

    # Built past the YAML (which refuses some of these values outright): the comment must hold whatever it is given.
    space = {**APPROVED.campaign.params, "scheduler": ParamSpec(choices=[value])}
    proposed = APPROVED.model_copy(update={"campaign": APPROVED.campaign.model_copy(
        update={"script": value, "fixed": {"epochs": 3, "note": value}, "params": space})})
    files = FileChanges(script=value, script_status="changed", others=(value,))
    baseline = Baseline("main", "approved", APPROVED)
    for body in (render_validation(path=value, program=proposed, baseline=baseline, files=files, target=value, sha=value),
                 render_validation(path=value, baseline=Baseline("main", "invalid", detail=value), program=APPROVED),
                 render_validation(path=value, problems=[value])):
        html = MarkdownIt("commonmark", {"html": True}).render(body)
        for tag in ("<img", "<a ", "<b>", "<script", "<h1", "<!-- hidden"):
            assert tag not in html, (tag, body)
        assert "\u202e" not in body
        outside_code = re.sub(r"<pre>.*?</pre>|<code>.*?</code>", "", html, flags=re.S)
        shown = value.replace("\u202e", "").splitlines()[0][:12]
        # markup defuses "<!--" with a zero-width space, which shows the same and can pass for no marker
        assert escape(shown, quote=False) in html.replace("\u200b", ""), html
        assert shown not in outside_code and escape(shown, quote=False) not in outside_code, html


def test_a_code_span_holds_any_text_whole():
    from markdown_it import MarkdownIt

    for text in ["a`b", "``x``", "`", " lead", "trail ", "tab\there", "x" * 300]:
        html = MarkdownIt("commonmark").render(literal(text))
        assert html.count("<code>") == 1, (text, html)
    assert literal("a\nb\u202e") == "`a\\nb\\u202e`" and literal("x" * 300).endswith("…`")


def test_a_comment_is_only_edited_not_created_when_asked_not_to():
    with CommentServer() as server:
        kwargs = dict(api_url=server.url, repo="me/repo", number=3, token="t0ken")
        assert upsert_comment(body=f"{MARKER}\nnothing", create=False, **kwargs) == "skipped"
        assert server.comments.get(3, []) == []
        assert upsert_comment(body=f"{MARKER}\nsomething", **kwargs) == "created"
        assert upsert_comment(body=f"{MARKER}\nnothing", create=False, **kwargs) == "updated"


def test_a_huge_program_still_fits_in_one_comment():
    """GitHub refuses a comment over 65,536 characters: every list and block in it is cut, and says so."""
    from mlr_action.core.program_model import ParamSpec

    space = {f"p{i:04d}_{'x' * 60}": ParamSpec(choices=["a" * 90]) for i in range(2000)}
    fixed = {f"f{i}_{'y' * 60}": "z" * 90 for i in range(500)}
    proposed = APPROVED.model_copy(update={"campaign": APPROVED.campaign.model_copy(update={"params": space, "fixed": fixed})})
    files = FileChanges(script="train.py", script_status="changed", others=tuple(f"d/{'n' * 90}{i}.py" for i in range(5000)))
    body = render_validation(path="program.md", program=proposed, approved=APPROVED, base="main", files=files)
    assert len(body) < 65_536, len(body)
    assert "- Campaign: `params`: ... and 1963 more entries changed" in body  # 2000 added, 3 removed, 40 shown
    assert "- Campaign: `fixed`: ... and 461 more entries changed" in body
    assert "- the training script `train.py` itself changed" in body and "and 4950 more" in body  # never cut away
    invalid = render_validation(path="program.md", problems=[f"problem {i}: " + "w" * 2000 for i in range(3000)])
    assert len(invalid) < 65_536 and "... and 2960 more (run mlr validate to see them all)" in invalid
