"""program.md parsing and validation: every error class names the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlr_action.core.program import ProgramError, load_program, parse_envelope, parse_program
from mlr_action.core.program_paths import output_repo_for
from programs import CAMPAIGN, ENVELOPE, program_text, with_


def problems_of(text: str, root: Path | None = None) -> list[str]:
    with pytest.raises(ProgramError) as info:
        parse_program(text, root=root)
    return info.value.problems


def test_valid_program_parses_with_seconds_and_defaults():
    program = parse_program(program_text())
    assert program.envelope.max_walltime == 8 * 3600
    assert program.envelope.max_timeout == 7200
    assert program.campaign.timeout == 3600
    assert program.default_flavor == "a10g-large"
    assert program.envelope.max_parallel == 1
    assert "Goal" in program.sections and "Be accurate." in program.sections["Goal"]


@pytest.mark.parametrize(
    "envelope, campaign, expected",
    [
        (with_(ENVELOPE, max_timeout="soon"), CAMPAIGN, "max_timeout: 'soon' is not a duration (use 30m, 2h, 2h30m or seconds)"),
        (with_(ENVELOPE, max_walltime="0"), CAMPAIGN, "max_walltime: '0' is not a duration"),
        (with_(ENVELOPE, max_walltime=-5), CAMPAIGN, "max_walltime: -5 is not a positive duration"),
        (with_(ENVELOPE, max_timout="3h"), CAMPAIGN, "max_timout: unknown key (did you mean max_timeout?)"),
        (with_(ENVELOPE, max_jobs=...), CAMPAIGN, "max_jobs: missing"),
        (with_(ENVELOPE, max_jobs=0), CAMPAIGN, "max_jobs: input should be greater than 0"),
        (with_(ENVELOPE, max_jobs="many"), CAMPAIGN, "max_jobs: input should be a valid integer"),
        (with_(ENVELOPE, allowed_flavors=["a10g-larg"]), with_(CAMPAIGN, flavor=...), "'a10g-larg' is not an HF Jobs flavor (did you mean a10g-large?)"),
        (with_(ENVELOPE, allowed_flavors=[]), with_(CAMPAIGN, flavor=...), "allowed_flavors: list should have at least 1 item"),
        (with_(ENVELOPE, allow_deletes="maybe"), CAMPAIGN, "allow_deletes: input should be a valid boolean"),
        (with_(ENVELOPE, max_parallel=0), CAMPAIGN, "max_parallel: input should be greater than or equal to 1"),
        (with_(ENVELOPE, output_repos=["sweep-*"]), CAMPAIGN, "output_repos: 'sweep-*' needs an owner"),
        (with_(ENVELOPE, max_timeout="10h"), CAMPAIGN, "max_timeout: 10h is over max_walltime 8h"),
        (ENVELOPE, with_(CAMPAIGN, flavor="t4-medium"), "flavor: t4-medium is not in allowed_flavors"),
        (ENVELOPE, with_(CAMPAIGN, timeout="3h"), "timeout: 3h is over max_timeout 2h"),
        (ENVELOPE, with_(CAMPAIGN, direction="maximise"), "direction: input should be 'maximize' or 'minimize'"),
        (ENVELOPE, with_(CAMPAIGN, metric=...), "metric: missing"),
        (ENVELOPE, with_(CAMPAIGN, paramz={}), "paramz: unknown key (did you mean params?)"),
        (ENVELOPE, with_(CAMPAIGN, params=...), "params: missing"),
        (ENVELOPE, with_(CAMPAIGN, params={"lr": {"type": "float", "low": 1, "high": 0.1}}), "params.lr: low (1) must be below high (0.1)"),
        (ENVELOPE, with_(CAMPAIGN, params={"lr": {"type": "float", "low": 0, "high": 1, "log": True}}), "params.lr: log: true needs low > 0"),
        (ENVELOPE, with_(CAMPAIGN, params={"lr": {"low": 0, "high": 1}}), "params.lr: needs type: float or type: int"),
        (ENVELOPE, with_(CAMPAIGN, params={"n": {"type": "int", "low": 0.5, "high": 3}}), "params.n: type: int needs whole-number low and high"),
        (ENVELOPE, with_(CAMPAIGN, params={"lr": {"type": "float", "low": 0, "hi": 1}}), "params.lr.hi: unknown key (did you mean high?)"),
        (ENVELOPE, with_(CAMPAIGN, params={"s": {"choices": []}}), "params.s.choices: list should have at least 1 item"),
        (ENVELOPE, with_(CAMPAIGN, fixed={"lr": 1}, params={"lr": {"choices": [1, 2]}}), "lr is in both params and fixed"),
        (ENVELOPE, with_(CAMPAIGN, params={"bad name": {"choices": [1]}}), "parameter names must look like lr or batch_size"),
        (ENVELOPE, with_(CAMPAIGN, patience=0), "patience: input should be greater than or equal to 1"),
        (ENVELOPE, with_(CAMPAIGN, name="Has Spaces"), "name: string should match pattern"),
    ],
)
def test_each_validation_error_names_key_and_fix(envelope, campaign, expected):
    problems = problems_of(program_text(envelope, campaign))
    assert any(expected in p for p in problems), problems


def test_an_empty_search_space_is_a_baseline_program():
    """`params: {}` (a script that reads no arguments yet) validates: the search proposer runs it once, as it is."""
    program = parse_program(program_text(ENVELOPE, with_(CAMPAIGN, params={}, fixed={})))
    assert program.campaign.params == {} and program.campaign.fixed == {}


def test_every_problem_is_listed_at_once():
    text = program_text(with_(ENVELOPE, max_timeout="soon", max_jobz=3), with_(CAMPAIGN, direction="up"))
    problems = problems_of(text)
    assert len(problems) == 3
    assert {p.split(":")[0] for p in problems} == {"max_timeout", "max_jobz", "direction"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("# nothing here\n", "missing heading '## Budget envelope'"),
        ("## Budget envelope\n\nno block\n\n## Campaign\n```yaml\nmetric: x\n```\n", "'## Budget envelope' has no fenced ```yaml block"),
        ("## Budget envelope\n```yaml\n- a\n- b\n```\n## Campaign\n```yaml\nx: 1\n```\n", "YAML must be a mapping of key: value lines, not list"),
        ("## Budget envelope\n```yaml\nmax_jobs: [\n```\n## Campaign\n```yaml\nx: 1\n```\n", "YAML does not parse at line"),
        ("## Budget envelope\n```yaml\nmax_jobs: 1\n```\n", "missing heading '## Campaign'"),
    ],
)
def test_structural_problems(text, expected):
    assert any(expected in p for p in problems_of(text))


def test_blocks_found_robustly_among_other_fences_and_headings():
    text = program_text(prose=(
        "## Goal\n\nExample:\n\n```yaml\nmax_jobs: 999\n```\n\n"
        "### Budget envelope notes\n\nnot the block\n"
    ))
    program = parse_program(text)
    assert program.envelope.max_jobs == 12


def test_heading_level_and_case_do_not_matter():
    text = program_text().replace("## Budget envelope", "### BUDGET ENVELOPE")
    assert parse_program(text).envelope.max_jobs == 12


def test_yaml_fence_inside_a_different_section_is_not_taken():
    text = "## Budget envelope\n\nSee below.\n\n## Other\n```yaml\nmax_jobs: 1\n```\n"
    assert any("has no fenced" in p for p in problems_of(text))


def test_script_must_exist_next_to_program(tmp_path):
    (tmp_path / "program.md").write_text(program_text())
    with pytest.raises(ProgramError) as info:
        load_program(tmp_path / "program.md")
    assert any("script: train.py does not exist" in p for p in info.value.problems)
    (tmp_path / "train.py").write_text("print('eval_accuracy=1')\n")
    assert load_program(tmp_path / "program.md").campaign.script == "train.py"


def test_script_outside_repo_is_refused(tmp_path):
    (tmp_path / "evil.py").write_text("")
    repo = tmp_path / "repo"
    repo.mkdir()
    text = program_text(campaign=with_(CAMPAIGN, script="../evil.py"))
    assert any("outside the repository" in p for p in problems_of(text, root=repo))


def test_missing_program_file_says_how_to_create_one(tmp_path):
    with pytest.raises(ProgramError) as info:
        load_program(tmp_path / "program.md")
    assert "mlr init" in info.value.problems[0]


def test_envelope_only_parse_defers_without_heading():
    assert parse_envelope("# just notes\n") is None
    assert parse_envelope(program_text()).max_jobs == 12
    with pytest.raises(ProgramError):
        parse_envelope("## Budget envelope\n```yaml\nmax_jobs: soon\n```\n")


def test_output_repo_matches_its_glob():
    program = parse_program(program_text())
    assert output_repo_for(program.envelope, "demo", 3) == "me/sweep-demo-003"
    no_repos = parse_program(program_text(with_(ENVELOPE, output_repos=[])))
    assert output_repo_for(no_repos.envelope, "demo", 3) == ""


def test_param_contains_checks_type_and_range():
    program = parse_program(program_text())
    lr, bs, sched = (program.campaign.params[k] for k in ("lr", "batch_size", "scheduler"))
    assert lr.contains(1e-4) and not lr.contains(1.0) and not lr.contains("1e-4") and not lr.contains(float("nan"))
    assert bs.contains(8) and not bs.contains(8.5) and not bs.contains(True) and not bs.contains(65)
    assert sched.contains("cosine") and not sched.contains("step")


def test_fingerprint_changes_with_the_envelope():
    a = parse_program(program_text())
    b = parse_program(program_text(with_(ENVELOPE, max_jobs=20)))
    assert a.fingerprint == parse_program(program_text()).fingerprint != b.fingerprint


# The fingerprints these program.md texts had before the Campaign gained image, dependencies, python,
# scheduling_timeout (issue 11), min_delta and final (issue 15), computed by that code (236b7bb): a ledger's
# `stopped` row carries one, and a release that adds keys with defaults must not make a stopped campaign resume.
OLD_FINGERPRINT = "3f12381e55e3"
FULL = (with_(ENVELOPE, max_cost_usd=5, max_parallel=2, max_llm_usd=1),
        with_(CAMPAIGN, name="x", seed=3, namespace="me", fixed={"epochs": 3, "note": "plain"},
              params={"a": {"type": "float", "low": 0, "high": 1, "step": 0.1}, "c": {"choices": [1, "x", True]}}))
OLD_FULL_FINGERPRINT = "578d8874f724"


def test_fingerprint_of_a_program_md_without_new_keys_is_the_one_older_releases_computed():
    assert parse_program(program_text()).fingerprint == OLD_FINGERPRINT
    assert parse_program(program_text(*FULL)).fingerprint == OLD_FULL_FINGERPRINT


@pytest.mark.parametrize("key, value", [
    ("scheduling_timeout", "10m"), ("min_delta", 0), ("min_delta", 0.0), ("dependencies", []), ("image", None),
])
def test_a_new_key_written_at_its_default_keeps_the_fingerprint(key, value):
    assert parse_program(program_text(campaign=with_(CAMPAIGN, **{key: value}))).fingerprint == OLD_FINGERPRINT


@pytest.mark.parametrize("key, value", [
    ("scheduling_timeout", "20m"), ("min_delta", 0.01), ("dependencies", ["torch>=2.4"]), ("python", "3.11"),
    ("image", "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"), ("final", {"repeats": 1}),
    ("final", {"repeats": 2, "seed_param": "seed"}),
])
def test_a_new_key_set_to_another_value_changes_the_fingerprint(key, value):
    changed = parse_program(program_text(campaign=with_(CAMPAIGN, **{key: value})))
    assert changed.fingerprint != OLD_FINGERPRINT


def test_a_final_block_fingerprints_what_it_says_not_how_it_says_it():
    fingerprint = lambda final: parse_program(program_text(campaign=with_(CAMPAIGN, final=final))).fingerprint  # noqa: E731
    assert fingerprint({"repeats": 3, "seed_param": "seed"}) == fingerprint({"seed_param": "seed"})
    assert fingerprint({"repeats": 3, "seed_param": "seed"}) != fingerprint({"repeats": 2, "seed_param": "seed"})


# --- what a reviewer reads is what is read --------------------------------------------------------


def _envelope_with(line: str) -> str:
    """program.md with ``line`` in the envelope: it replaces the line of the same key, or follows max_jobs."""
    text = program_text()
    key = line.split(":")[0].strip()
    start = text.index("```yaml\n") + len("```yaml\n")
    block = text[start:text.index("```", start)]
    old = next((x for x in block.splitlines() if x.split(":")[0] == key), None)
    new_block = block.replace(old, line, 1) if old else block.replace("max_jobs: 12\n", f"max_jobs: 12\n{line}\n", 1)
    return text[:start] + new_block + text[start + len(block):]


@pytest.mark.parametrize("line, fragment", [
    ("max_jobs: 0x10", "line 10 (max_jobs): `0x10` is read as 16 (hexadecimal); write the number in plain decimal, "
                       "or quote it ('0x10') to mean the text"),
    ("max_jobs: 017", "(max_jobs): `017` is read as 15 (octal, for the leading 0)"),
    ("max_jobs: -010", "`-010` is read as -8 (octal"),
    ("max_jobs: 0b11", "`0b11` is read as 3 (binary)"),
    ("max_jobs: 0o17", "`0o17` is text here but a number to YAML 1.2 readers"),
    ("max_jobs: 1_000", "`1_000` is read as 1000 (YAML 1.1 drops the underscores)"),
    ("max_cost_usd: 1_000.5", "(max_cost_usd): `1_000.5` is read as 1000.5"),
    ("max_jobs: 1:40", "`1:40` is read as 100 (YAML 1.1 base 60)"),
    ("max_cost_usd: 1:30.5", "`1:30.5` is read as 90.5 (YAML 1.1 base 60)"),
    ("max_cost_usd: -.inf", "`-.inf` is read as infinity; write a finite number"),
    ("max_cost_usd: .NaN", "`.NaN` is read as not-a-number"),
    ("allow_deletes: yes", "(allow_deletes): `yes` is read as true (a YAML 1.1 boolean); write true, or quote it ('yes')"),
    ("allow_deletes: Off", "`Off` is read as false (a YAML 1.1 boolean); write false"),
    ("max_cost_usd: ~", "`~` is read as null (not set); write null, or delete the line"),
    ("max_jobs: \u0661\u0662", "`\u0661\u0662` has the digit U+0661 (ARABIC-INDIC DIGIT ONE), which Python reads as 1"),
    ("max_walltime: '\uff18h'", "(max_walltime): `\uff18h` has the digit U+FF18 (FULLWIDTH DIGIT EIGHT)"),
    ("max_parallel: \u0c68", "(max_parallel): `\u0c68` has the digit U+0C68 (TELUGU DIGIT TWO)"),
    ("max_jobs: &a 12", "line 10: `&a` is a YAML anchor"),
    ("max_jobs: !!float 12", "`!!float` is an explicit YAML tag"),
    ("max_jobs: !<tag:yaml.org,2002:int> 12", "`!<tag:yaml.org,2002:int>` is an explicit YAML tag"),
    ("max_jobs: 12  # \u2066note\u2069", "U+2066 (LEFT-TO-RIGHT ISOLATE) is invisible on the page"),
    ('max_jobs: "\\x31\\x30\\x30\\x30"', "(max_jobs): `\\x` in double quotes is an escape that stands for other characters"),
    ('max_walltime: "8\\u0068"', "(max_walltime): `\\u` in double quotes is an escape"),
    ('max_walltime: "8\\\n  h"', "(max_walltime): a backslash at the end of a line in double quotes is an escape"),
    ("max_jobs: 12\u00ad", "U+00AD (SOFT HYPHEN)"),
])
def test_yaml_a_reviewer_would_misread_is_refused_naming_line_key_and_fix(line, fragment):
    problems = problems_of(_envelope_with(line))
    assert len(problems) == 1 and problems[0].startswith("'## Budget envelope' line "), problems
    assert fragment in problems[0], problems


@pytest.mark.parametrize("line, key, value", [
    ("max_jobs: 12.0", "max_jobs", 12),
    ("max_jobs: '12'", "max_jobs", 12),
    ("max_jobs: +12", "max_jobs", 12),
    ("max_jobs: 08", "max_jobs", 8),  # not octal (8 is no octal digit): the text '08', read by pydantic as 8
    ("max_cost_usd: 1e3", "max_cost_usd", 1000.0),
    ("max_cost_usd: 2.5e+1", "max_cost_usd", 25.0),
    ("max_cost_usd: .5", "max_cost_usd", 0.5),
    ("max_cost_usd: 012.5", "max_cost_usd", 12.5),
    ("max_cost_usd: null", "max_cost_usd", None),
    ("max_cost_usd:", "max_cost_usd", None),
    ("allow_deletes: TRUE", "allow_deletes", True),
    ("allow_deletes: 'no'", "allow_deletes", False),
    ("max_walltime: '2h30m'", "max_walltime", 9000),
])
def test_plain_decimal_numbers_and_true_false_mean_what_they_say(line, key, value):
    envelope = parse_program(_envelope_with(line)).envelope
    assert getattr(envelope, key) == value


def test_the_escapes_that_read_as_written_are_kept():
    value = 'C:\\data "raw"\nline2\tend'
    text = program_text(campaign=with_(CAMPAIGN, fixed={"epochs": 3, "path": value}))
    assert '"C:\\\\data \\"raw\\"\\nline2\\tend"' in text  # written with \\, \", \n and \t
    assert parse_program(text).campaign.fixed["path"] == value


@pytest.mark.parametrize("heading", [
    "## Budget  envelope", "## budget ENVELOPE ##", "## *Budget* envelope", "## Budget&#32;envelope",
    "## `Budget envelope`", "#### Budget envelope", "Budget envelope\n---",
])
def test_a_heading_counts_as_a_reader_sees_it(heading):
    assert parse_program(program_text().replace("## Budget envelope", heading)).envelope.max_jobs == 12


@pytest.mark.parametrize("extra, fragment", [
    ("## Budget envelopes\n\n```yaml\nmax_jobs: 12\n```\n", "the heading 'Budget envelopes' holds a code block and reads "
                                                           "like 'Budget envelope' but is not that heading; name it exactly"),
    ("## Campaign:\n\n```yaml\nmetric: loss\n```\n", "the heading 'Campaign:' holds a code block and reads like 'Campaign'"),
    ("### Notes\n\n```bash\npython train.py\n```\n", "'## Campaign' has 2 code blocks"),  # a subsection is in the section
])
def test_a_block_a_reviewer_could_take_for_the_settings_is_a_problem(extra, fragment):
    problems = problems_of(program_text() + "\n" + extra)
    assert any(fragment in p for p in problems), problems


def test_headings_that_only_resemble_a_settings_heading_without_a_block_are_prose():
    text = program_text(prose="## Goal\n\nBe accurate.\n\n## Budget envelopes\n\nSee below.\n\n"
                              "## Budget envelope notes\n\n```yaml\nmax_jobs: 999\n```\n")
    assert parse_program(text).envelope.max_jobs == 12


def test_finding_the_blocks_reads_each_token_once_however_many_headings():
    """The work count of the one pass: 20,000 headings cost one read per token (it was headings x tokens)."""
    from markdown_it import MarkdownIt

    from mlr_action.core import program_markdown

    class Counted(list):
        reads = 0

        def __iter__(self):
            for token in super().__iter__():
                Counted.reads += 1
                yield token

        def __getitem__(self, index):
            Counted.reads += 1
            return super().__getitem__(index)

    text = "".join(f"## Heading {i}\n\n*note* {i}\n\n" for i in range(20_000)) + program_text()
    tokens = Counted(MarkdownIt("commonmark").disable("inline").parse(text))
    found, prose = program_markdown._index(tokens, text.split("\n"), {"budget envelope": "Budget envelope",
                                                                      "campaign": "Campaign"})
    assert Counted.reads == len(tokens)
    assert [b.line for b in found["budget envelope"].blocks] == [text.split("\n").index("max_jobs: 12") + 1]
    assert len(prose) == 20_004 and prose["Heading 19999"] == "*note* 19999"


# --- how a job runs: image, dependencies, python --------------------------------------------------


@pytest.mark.parametrize("changes, expected", [
    ({"image": "a b"}, "image: 'a b' is not a container image (like pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime)"),
    ({"image": "x;rm -rf /"}, "image: 'x;rm -rf /' is not a container image"),
    ({"dependencies": ["--index-url=https://evil.example"]}, "dependencies.0: '--index-url=https://evil.example' is "
                                                             "not a package requirement"),
    ({"dependencies": "torch"}, "dependencies: input should be a valid list"),
    ({"dependencies": ["torch\nnumpy"]}, "dependencies.0: 'torch\\nnumpy' is not a package requirement"),
    ({"python": 3.10}, "python: 3.1 is a number; quote it, like python: '3.11' (as a number, 3.10 reads as 3.1)"),
    ({"python": "three"}, "python: 'three' is not a Python version (like '3.11' or '3.12.7')"),
])
def test_the_keys_of_how_a_job_runs_are_checked_with_the_fix(changes, expected):
    problems = problems_of(program_text(ENVELOPE, with_(CAMPAIGN, **changes)))
    assert any(p.startswith(expected) for p in problems), problems


def test_the_keys_of_how_a_job_runs_are_read():
    campaign = parse_program(program_text(ENVELOPE, with_(CAMPAIGN, image="pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime",
                                                          dependencies=["accelerate>=1.0", "torch; sys_platform == 'linux'"],
                                                          python="3.12"))).campaign
    assert campaign.image == "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime" and campaign.python == "3.12"
    assert campaign.dependencies == ["accelerate>=1.0", "torch; sys_platform == 'linux'"]
