"""program.md parsing and validation: every error class names the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlr_action.program import ProgramError, load_program, output_repo_for, parse_envelope, parse_program
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
        (ENVELOPE, with_(CAMPAIGN, params={}), "params: dictionary should have at least 1 item"),
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
