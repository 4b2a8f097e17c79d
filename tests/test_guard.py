"""mlr guard: the PreToolUse hook that holds Bash commands to the budget envelope."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlr_action import guard
from mlr_action.guard import decide, main

ENVELOPE = {
    "max_jobs": 2,
    "max_walltime": "8h",
    "allowed_flavors": ["t4-small", "a10g-large"],
    "max_timeout": "2h",
    "allow_deletes": False,
    "output_repos": ["me/sweep-*"],
}
JOBS = "uv run /x/scripts/hf_jobs.py run --script train.py"
REPO = "uv run /x/scripts/hf_repo.py files"
HF_RUN = "hf jobs run --flavor t4-small --timeout 1h python:3.12 python train.py"


def write_program(root: Path, envelope: dict | None = None, *, block: str | None = None) -> None:
    body = block if block is not None else yaml.safe_dump(ENVELOPE if envelope is None else envelope)
    (root / "program.md").write_text(f"# Sweep\n\n## Goal\n\nBe good.\n\n## Budget envelope\n\n```yaml\n{body}```\n")


def row(iter: int, job_id: str | None, status: str = "submitted", timeout: str = "1h", **extra) -> dict:
    return {"iter": iter, "ts": "2025-01-01T00:00:00Z", "job_id": job_id, "status": status, "timeout": timeout,
            "config": {"lr": 0.001}, **extra}


def write_ledger(root: Path, rows: list[dict], *, tail: str = "") -> None:
    (root / "runs").mkdir(exist_ok=True)
    (root / "runs" / "ledger.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def ask(root: Path, command: str, environ: dict | None = None) -> dict | None:
    return decide({"tool_input": {"command": command}, "cwd": str(root)}, environ=environ or {})


def verdict(answer: dict | None) -> str:
    return "defer" if answer is None else answer["hookSpecificOutput"]["permissionDecision"]


def reason(answer: dict | None) -> str:
    return answer["hookSpecificOutput"]["permissionDecisionReason"] if answer else ""


def in_flight(n: int, timeout: str = "1h") -> list[dict]:
    return [row(i, f"j{i}", timeout=timeout) for i in range(1, n + 1)]


# --- The seed's scenarios -------------------------------------------------------

SEED_CASES = [
    # (ledger, envelope changes, command, verdict, reason contains)
    ([], {}, f"{JOBS} --hardware-flavor t4-small --timeout 1h", "allow", "job 1/2, flavor t4-small"),
    (in_flight(2), {}, f"{JOBS} --hardware-flavor t4-small --timeout 1h", "deny", "max_jobs=2 reached"),
    ([], {}, f"{JOBS} --hardware-flavor a100x8 --timeout 1h", "deny", "flavor 'a100x8' not in allowed_flavors"),
    ([], {}, f"{JOBS} --hardware-flavor t4-small --timeout 5h", "deny", "timeout 5h exceeds max_timeout 2h"),
    (in_flight(8), {"max_jobs": 100}, f"{JOBS} --hardware-flavor t4-small --timeout 1h", "deny", "walltime"),
    # Absent flags mean the seed's defaults: cpu-basic for 30m.
    ([], {}, JOBS, "deny", "flavor 'cpu-basic'"),
    ([], {"allowed_flavors": ["cpu-basic"]}, JOBS, "allow", "flavor cpu-basic, timeout 30m"),
    # argparse takes unique prefixes and the last value, so the guard does too.
    ([], {}, f"{JOBS} --hard t4-small --time=5h", "deny", "exceeds max_timeout"),
    ([], {}, f"{JOBS} --hardware-flavor t4-small --timeout 1h --timeout 5h", "deny", "exceeds max_timeout"),
    ([], {}, f"{REPO} upload --repo-id me/sweep-3 --path x --content-file y", "allow", "upload to 'me/sweep-3'"),
    ([], {}, f"{REPO} upload --repo-id other/model --path x", "deny", "out of scope"),
    ([], {}, f"{REPO} delete --repo-id me/sweep-1 --patterns '*.tmp'", "deny", "allow_deletes: false"),
    ([], {"allow_deletes": True}, f"{REPO} delete --repo-id me/sweep-1 --patterns '*.tmp'", "allow", "delete to"),
    ([], {"allow_deletes": True}, f"{REPO} delete --repo-id other/x --patterns '*.tmp'", "deny", "out of scope"),
    ([], {}, f"{REPO} --repo-i other/model upload", "deny", "out of scope"),
    # Unlike the seed, no output_repos means no Hub writes, as in the bot.
    ([], {"output_repos": []}, f"{REPO} upload --repo-id me/sweep-3 --path x", "deny", "out of scope"),
    ([], {}, f"{REPO} list --repo-id gpt2", "defer", ""),
    ([], {}, f"{REPO} read --repo-id gpt2 --path config.json", "defer", ""),
    ([], {}, "uv run /x/scripts/hf_jobs.py inspect --job-id abc", "defer", ""),
    ([], {}, "uv run /x/scripts/papers.py search --query z", "defer", ""),
    ([], {}, "ls -la", "defer", ""),
    ([], {}, "hf jobs ps", "defer", ""),
]


@pytest.mark.parametrize("rows, changes, command, expected, text", SEED_CASES)
def test_seed_scenarios(tmp_path, rows, changes, command, expected, text):
    write_program(tmp_path, {**ENVELOPE, **changes})
    write_ledger(tmp_path, rows)
    answer = ask(tmp_path, command)
    assert verdict(answer) == expected, reason(answer)
    assert text in reason(answer)
    if expected == "deny" and "scope" not in text and "deletes" not in text:
        assert reason(answer).startswith("Budget envelope exceeded — ")
        assert reason(answer).endswith("Stop the loop and report to the user.")


SPEND_OR_WRITE = [
    f"{JOBS} --hardware-flavor a100x8 --timeout 10h",
    f"{REPO} upload --repo-id me/x --path y",
    f"{REPO} delete --repo-id me/x --patterns z",
    "hf jobs run --flavor a100x8 python:3.12 python t.py",
    "hf jobs uv run train.py",
]


@pytest.mark.parametrize("command", SPEND_OR_WRITE + [f"{REPO} list --repo-id gpt2", "ls -la"])
def test_defers_without_an_envelope(tmp_path, command):
    assert ask(tmp_path, command) is None  # no program.md: interactive use
    (tmp_path / "program.md").write_text("# Notes\n\n## Goal\n\nNo budget here.\n")
    assert ask(tmp_path, command) is None  # program.md with no envelope heading


# --- A program.md that does not validate spends nothing -------------------------

BAD_ENVELOPES = [
    ("max_jobs: [1\n", "YAML does not parse"),
    ("- just\n- a list\n", "must be a mapping"),
    (yaml.safe_dump({**ENVELOPE, "max_jobz": 100}), "max_jobz: unknown key (did you mean max_jobs?)"),
    (yaml.safe_dump({**ENVELOPE, "max_walltime": "8 hours"}), "max_walltime"),
    (yaml.safe_dump({**ENVELOPE, "allowed_flavors": ["a10g-larg"]}), "did you mean a10g-large?"),
]


@pytest.mark.parametrize("block, text", BAD_ENVELOPES)
def test_invalid_envelope_denies_spend(tmp_path, block, text):
    write_program(tmp_path, block=block)
    answer = ask(tmp_path, f"{JOBS} --hardware-flavor t4-small --timeout 1h")
    assert verdict(answer) == "deny"
    assert reason(answer).startswith("Autonomous run blocked")
    assert text in reason(answer)
    assert verdict(ask(tmp_path, f"{REPO} upload --repo-id me/sweep-1")) == "deny"
    assert ask(tmp_path, "ls -la") is None  # only spends and writes are blocked


def test_every_problem_is_listed(tmp_path):
    write_program(tmp_path, {**ENVELOPE, "max_jobz": 3, "max_timeout": "soon", "allowed_flavors": ["gpu-huge"]})
    text = reason(ask(tmp_path, f"{JOBS} --hardware-flavor t4-small"))
    assert "max_jobz" in text and "max_timeout" in text and "gpu-huge" in text


def test_project_dir_is_honoured(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    write_program(project)
    write_ledger(project, in_flight(2))
    command = f"{JOBS} --hardware-flavor t4-small --timeout 1h"
    assert ask(elsewhere, command) is None
    answer = ask(elsewhere, command, {"CLAUDE_PROJECT_DIR": str(project)})
    assert verdict(answer) == "deny" and "max_jobs" in reason(answer)


# --- Our accounting: distinct job ids, actual durations -------------------------


def test_one_job_on_several_rows_counts_once(tmp_path):
    write_program(tmp_path)
    write_ledger(tmp_path, [row(1, "a"), row(1, "a", "running"), row(1, "a", "completed", duration_s=600)])
    answer = ask(tmp_path, f"{JOBS} --hardware-flavor t4-small --timeout 1h")
    assert verdict(answer) == "allow" and "job 2/2" in reason(answer)


@pytest.mark.parametrize("status, expected", [("completed", "allow"), ("error", "allow"), ("running", "deny")])
def test_finished_jobs_are_charged_their_duration(tmp_path, status, expected):
    # 2h of timeout but 10 minutes of work: a finished job leaves 1h50m; one in flight holds all 2h.
    write_program(tmp_path, {**ENVELOPE, "max_walltime": "2h", "max_jobs": 10})
    write_ledger(tmp_path, [row(1, "a", status, timeout="2h", duration_s=600)])
    answer = ask(tmp_path, f"{JOBS} --hardware-flavor t4-small --timeout 1h")
    assert verdict(answer) == expected, reason(answer)


def test_cost_ceiling_is_checked(tmp_path):
    write_program(tmp_path, {**ENVELOPE, "max_cost_usd": 1})
    answer = ask(tmp_path, "hf jobs run --flavor a10g-large --timeout 1h img")
    assert verdict(answer) == "deny" and "max_cost_usd" in reason(answer)


# --- The official HF CLI ---------------------------------------------------------

HF_CASES = [
    (HF_RUN, "allow", "flavor t4-small, timeout 1h"),
    ("hf jobs run --flavor=a10g-large --timeout=2h python:3.12 python t.py", "allow", "flavor a10g-large, timeout 2h"),
    ("hf jobs run --flavor=a100x8 --timeout=1h img", "deny", "flavor 'a100x8'"),
    ("hf jobs run --flavor t4-small --timeout 3h img", "deny", "exceeds max_timeout"),
    ("hf jobs run --timeout 1h img", "deny", "flavor 'cpu-basic'"),  # the CLI's default flavor
    ("hf jobs uv run --flavor t4-small --timeout 1h train.py --lr 0.1", "allow", "flavor t4-small"),
    ("hf jobs uv run --flavor=a100x8 --timeout=1h train.py", "deny", "flavor 'a100x8'"),
    # click reads options after the image too, the last one wins, and nothing after `--`.
    ("hf jobs run --flavor t4-small img python t.py --timeout 5h", "deny", "exceeds max_timeout"),
    ("hf jobs run --timeout 1h --flavor t4-small --flavor a100x8 img", "deny", "flavor 'a100x8'"),
    ("hf jobs run --flavor t4-small --timeout 1h img -- python t.py --timeout 9h", "allow", "timeout 1h"),
    ("hf jobs run --name --dry-run --flavor a100x8 img", "deny", "flavor 'a100x8'"),
    ("uvx hf jobs run --flavor a100x8 img", "deny", "flavor 'a100x8'"),
    ("hf jobs run --dry-run --flavor a100x8 img", "defer", ""),  # nothing is submitted
    ("hf jobs run --flavor t4-small --timeout 2h --attempts 5 img", "deny", "walltime"),
    ("hf jobs run --flavor t4-small --timeout 2h --attempts 2 img", "allow", "x 2 attempts"),
    ("hf jobs uv run --flavor t4-small https://example.com/train.py", "deny", "--flavor and --timeout explicitly"),
    ("hf jobs scheduled run @daily --flavor t4-small img", "deny", "scheduled"),
    ("hf jobs rerun abc123", "deny", "rerun"),
    ("hf jobs inspect abc123", "defer", ""),
]


@pytest.mark.parametrize("command, expected, text", HF_CASES)
def test_hf_cli(tmp_path, command, expected, text):
    write_program(tmp_path, {**ENVELOPE, "max_walltime": "8h"})
    answer = ask(tmp_path, command)
    assert verdict(answer) == expected, reason(answer)
    assert text in reason(answer)


def test_hf_cli_defaults(tmp_path):
    write_program(tmp_path, {**ENVELOPE, "allowed_flavors": ["cpu-basic"]})
    answer = ask(tmp_path, "hf jobs run python:3.12 python t.py")
    assert verdict(answer) == "allow" and "flavor cpu-basic, timeout 30m" in reason(answer)


UV_HEADER = '# /// script\n# dependencies = ["torch"]\n#\n# [tool.hf-jobs]\n# flavor = "a100x8"\n# timeout = 600\n# ///\nprint(1)\n'


@pytest.mark.parametrize("command, expected, text", [
    ("hf jobs uv run train.py", "deny", "flavor 'a100x8'"),
    ("hf jobs uv run --flavor t4-small train.py", "allow", "timeout 10m"),
    ("cd sub && hf jobs uv run --flavor t4-small train.py", "deny", "cannot find train.py"),
    ("hf jobs uv run --flavor t4-small --timeout 1h missing.py", "allow", "timeout 1h"),
])
def test_uv_script_header(tmp_path, command, expected, text):
    write_program(tmp_path)
    (tmp_path / "train.py").write_text(UV_HEADER)
    (tmp_path / "sub").mkdir()
    answer = ask(tmp_path, command)
    assert verdict(answer) == expected, reason(answer)
    assert text in reason(answer)


@pytest.mark.parametrize("command", [
    "hf jobs run --flavor t4-small --timeout 1.5h img",
    "hf jobs run --flavor t4-small --timeout=soon img",
    "hf jobs run --flavor t4-small --timeout 0 img",
    "hf jobs run --flavor t4-small --timeout '' img",
    "hf jobs uv run --flavor t4-small --timeout $T train.py",
    f"{JOBS} --hardware-flavor t4-small --timeout garbage",
])
def test_a_timeout_that_is_not_a_duration_denies(tmp_path, command):
    write_program(tmp_path)
    answer = ask(tmp_path, command)
    assert verdict(answer) == "deny"
    assert "is not a duration" in reason(answer) and "30m, 2h" in reason(answer)


# --- Chained commands -------------------------------------------------------------

CHAINS = [
    (f"cd sub && {HF_RUN}", "allow"),
    ("cd sub && hf jobs run --flavor a100x8 img", "deny"),
    ("HF_TOKEN=hf_x HF_HUB_VERBOSITY=info hf jobs run --flavor a100x8 img", "deny"),
    ("echo start; hf jobs run --flavor a100x8 img", "deny"),
    ("echo start;hf jobs run --flavor a100x8 img", "deny"),
    ("git pull\nhf jobs run --flavor a100x8 img", "deny"),
    ("hf jobs run \\\n  --flavor a100x8 \\\n  img", "deny"),
    ("bash -lc 'hf jobs run --flavor a100x8 img'", "deny"),
    ("echo $(hf jobs run --flavor a100x8 img)", "deny"),
    (f"{HF_RUN} | tee log.txt", "defer"),  # within, but tee is not the guard's to approve
    (f"ls && {HF_RUN}", "defer"),
    (f"{HF_RUN} && echo 'a; hf jobs run --flavor a100x8 img'", "defer"),  # quoted: just text
    ("git status && echo done", "defer"),
    ("hf jobs run --flavor a100x8 img 'unbalanced", "deny"),  # shlex fails: whitespace split
    (f"{HF_RUN} && {REPO} delete --repo-id me/sweep-1", "deny"),
    (f"{HF_RUN} && {REPO} upload --repo-id me/sweep-1 --path x", "allow"),
]


@pytest.mark.parametrize("command, expected", CHAINS)
def test_chained_commands(tmp_path, command, expected):
    write_program(tmp_path)
    (tmp_path / "sub").mkdir()
    answer = ask(tmp_path, command)
    assert verdict(answer) == expected, reason(answer)


def test_jobs_in_one_command_add_up(tmp_path):
    write_program(tmp_path)
    write_ledger(tmp_path, in_flight(1))
    assert verdict(ask(tmp_path, HF_RUN)) == "allow"
    answer = ask(tmp_path, f"{HF_RUN} && {HF_RUN}")
    assert verdict(answer) == "deny" and "max_jobs=2 reached (2 already submitted)" in reason(answer)


# --- The ledger ---------------------------------------------------------------------


def test_truncated_last_line_is_tolerated(tmp_path):
    write_program(tmp_path)
    write_ledger(tmp_path, in_flight(1), tail='{"iter": 2, "ts": "2025-01-01T0')
    answer = ask(tmp_path, HF_RUN)
    assert verdict(answer) == "allow" and "job 2/2" in reason(answer)


@pytest.mark.parametrize("tail", ["not json at all\n", '{"iter": "two", "ts": "x", "status": "submitted"}\n', "[1, 2]\n"])
def test_unreadable_ledger_line_denies(tmp_path, tail):
    write_program(tmp_path)
    write_ledger(tmp_path, in_flight(1), tail=tail + json.dumps(row(3, "c")) + "\n")
    answer = ask(tmp_path, HF_RUN)
    assert verdict(answer) == "deny"
    assert "ledger.jsonl:2" in reason(answer) and "nothing was spent" in reason(answer)
    assert verdict(ask(tmp_path, f"{REPO} upload --repo-id me/sweep-1")) == "allow"  # writes need no ledger


# --- main: the hook's stdin and stdout ---------------------------------------------


def run_main(payload: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(io.StringIO(payload), out)
    return code, out.getvalue()


def test_main_writes_the_decision(tmp_path, monkeypatch):
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    write_program(tmp_path)
    code, out = run_main(json.dumps({"tool_name": "Bash", "tool_input": {"command": HF_RUN}, "cwd": str(tmp_path)}))
    assert code == 0
    assert json.loads(out) == {"hookSpecificOutput": {
        "hookEventName": "PreToolUse", "permissionDecision": "allow",
        "permissionDecisionReason": "Within budget envelope (job 1/2, flavor t4-small, timeout 1h).",
    }}


@pytest.mark.parametrize("payload", ["", "not json", "[1, 2]", '{"tool_input": "x"}', '{"tool_input": {"command": 3}}',
                                     '{"tool_input": {"command": "ls"}}'])
def test_main_defers_quietly(payload, monkeypatch):
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    assert run_main(payload) == (0, "")


def test_main_fails_closed_on_a_bug(tmp_path, monkeypatch):
    def broken(command, cwd):
        raise RuntimeError("boom")

    monkeypatch.setattr(guard, "_steps", broken)
    code, out = run_main(json.dumps({"tool_input": {"command": HF_RUN}, "cwd": str(tmp_path)}))
    assert code == 0
    assert "RuntimeError: boom" in json.loads(out)["hookSpecificOutput"]["permissionDecisionReason"]


def test_as_a_real_hook_process(tmp_path):
    write_program(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    payload = json.dumps({"tool_input": {"command": "cd . && hf jobs run --flavor=a100x8 img"}, "cwd": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-c", "from mlr_action.guard import main; raise SystemExit(main())"],
        input=payload, capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)["hookSpecificOutput"]
    assert answer["permissionDecision"] == "deny"
    assert answer["permissionDecisionReason"].startswith("Budget envelope exceeded — flavor 'a100x8'")
