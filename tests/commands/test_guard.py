"""mlr guard: the PreToolUse hook that holds Bash commands to the budget envelope."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlr_action.commands import guard
from mlr_action.commands.guard import decide, main

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
    # Absent flags mean the seed's defaults, cpu-basic for 30m: a breach denies, but defaults
    # set in a script the guard does not read are never allowed (issue 10: `uv run` needs both flags).
    ([], {}, JOBS, "deny", "flavor 'cpu-basic'"),
    ([], {}, f"{JOBS} --hardware-flavor t4-small", "defer", ""),
    ([], {}, f"{JOBS} --timeout 1h", "deny", "flavor 'cpu-basic'"),
    ([], {"allowed_flavors": ["cpu-basic"]}, JOBS, "defer", ""),
    ([], {"allowed_flavors": ["cpu-basic"]}, f"{JOBS} --hardware-flavor cpu-basic --timeout 30m", "allow",
     "flavor cpu-basic, timeout 30m"),
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
    ("hf jobs scheduled uv run @daily --flavor t4-small --timeout 1h t.py", "deny", "scheduled"),
    ("hf jobs scheduled resume abc123", "deny", "scheduled"),  # resuming or triggering one spends too
    ("hf jobs scheduled trigger abc123", "deny", "scheduled"),
    ("hf jobs scheduled suspend abc123", "defer", ""),
    ("hf jobs --help", "defer", ""),
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
    # Flavor or timeout from the header, read where the guard thinks the script is: never "allow".
    ("hf jobs uv run --flavor t4-small train.py", "defer", ""),
    ("hf jobs uv run --timeout 10m train.py", "deny", "flavor 'a100x8'"),
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
    def broken(command, cwd, environ):
        raise RuntimeError("boom")

    monkeypatch.setattr(guard, "_plan", broken)
    code, out = run_main(json.dumps({"tool_input": {"command": HF_RUN}, "cwd": str(tmp_path)}))
    assert code == 0
    assert "RuntimeError: boom" in json.loads(out)["hookSpecificOutput"]["permissionDecisionReason"]


def test_as_a_real_hook_process(tmp_path):
    write_program(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    payload = json.dumps({"tool_input": {"command": "cd . && hf jobs run --flavor=a100x8 img"}, "cwd": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-c", "from mlr_action.commands.guard import main; raise SystemExit(main())"],
        input=payload, capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)["hookSpecificOutput"]
    assert answer["permissionDecision"] == "deny"
    assert answer["permissionDecisionReason"].startswith("Budget envelope exceeded — flavor 'a100x8'")


# --- Commands an agent composes: the guard allows only what it fully reads --------
#
# Each spend below is allowed when written plainly (test_plain_spends_are_allowed), so a
# construct around or inside it is what turns the answer. Whatever the guard does not model
# is never "allow"; a spend it can see in such a command is denied, naming the construct.

SPENDS = {
    "hf": "hf jobs run --flavor {flavor} --timeout 1h img python t.py",
    "seed": "uv run /x/scripts/hf_jobs.py run --script t.py --hardware-flavor {flavor} --timeout 1h",
    "uv": "hf jobs uv run --flavor {flavor} --timeout 1h t.py",
}
WITHIN, OUTSIDE = "t4-small", "a100-large"

AROUND = [
    "echo $({S})", "echo `{S}`", "cat <({S})", "{S} > >(tee log)", "x=$({S}) true",
    "{S} > log.txt", "{S} >> log.txt", "{S} 2>&1", "{S} &> log.txt", "{S} < /dev/null", "{S} <<< x",
    "bash <<EOF\n{S}\nEOF", "bash <<< '{S}'", "cat <<'EOF' | bash\n{S}\nEOF",
    "({S})", "{{ {S}; }}", "f() {{ {S}; }}; f", "alias go='{S}'; go", "eval '{S}'", "eval {S}", "exec {S}",
    "command {S}", "builtin {S}", "env {S}", "env -S '{S}'", "sudo {S}", "nohup {S}", "time {S}", "timeout 9 {S}",
    "nice {S}", "watch {S}", "setsid {S}", "echo img | xargs {S}", "xargs {S} < args.txt",
    "{S} &", "{S} & wait", "false || {S}", "! {S}", "{S} |& tee log", "coproc {S}",
    "for i in 1 2 3; do {S}; done", "while true; do {S}; done", "until false; do {S}; done",
    "select x in a; do {S}; done", "if true; then {S}; fi", "[[ -n x ]] && {S}", "[ -n x ] && {S}",
    "case x in x) {S};; esac", "bash -c '{S}'", "bash -lc '{S}'", "sh -c \"{S}\"", "sudo sh -c '{S}'",
    "X=1; {S}", "export X=1; {S}", "set -k; {S}", "shopt -s expand_aliases; {S}", "source env.sh; {S}",
    ". env.sh && {S}", "pushd sub && {S}", "trap '{S}' EXIT", "{S} # note", "# {S}", "{S} \\\n  --label x",
    "{S};;", "&& {S}", "{S} &&", "=hf x; {S}",
    # A prefix that changes what the program runs, or where the token goes.
    "PYTHONPATH=/tmp/x {S}", "PATH=/tmp/x:/usr/bin {S}", "LD_PRELOAD=/tmp/x.so {S}", "HF_ENDPOINT=https://x.example {S}",
    "HF_TOKEN=hf_x UV_PYTHON=/tmp/x {S}",
]


@pytest.mark.parametrize("kind", SPENDS)
def test_plain_spends_are_allowed(tmp_path, kind):
    write_program(tmp_path)
    assert verdict(ask(tmp_path, SPENDS[kind].format(flavor=WITHIN))) == "allow"
    assert verdict(ask(tmp_path, SPENDS[kind].format(flavor=OUTSIDE))) == "deny"


@pytest.mark.parametrize("template", AROUND)
def test_a_construct_around_a_spend_is_never_allowed(tmp_path, template):
    write_program(tmp_path)
    (tmp_path / "sub").mkdir()
    for spend in SPENDS.values():
        for flavor in (WITHIN, OUTSIDE):
            command = template.format(S=spend.format(flavor=flavor))
            answer = ask(tmp_path, command, {"HOME": str(tmp_path)})
            assert verdict(answer) == "deny", (command, reason(answer))


# Inside the spend's own words: each could make the real flavor or timeout other than the one
# written. `--` and a word after the image: click still reads options there (test_hf_cli).
INSIDE = [
    "hf jobs run --flavor $FLAVOR --timeout 1h img",
    "hf jobs run --flavor ${FLAVOR} --timeout 1h img",
    'hf jobs run --flavor "$FLAVOR" --timeout 1h img',
    "hf jobs run --flavor $'t4-small' --timeout 1h img",
    'hf jobs run --flavor $"t4-small" --timeout 1h img',
    "hf jobs run --flavor t4-small --timeout 1h img $'--flavor=a100-large'",
    "hf jobs run --flavor t4-small --timeout 1h img $EXTRA",
    "hf jobs run --flavor t4-small --timeout $((3600))s img",
    "hf jobs run --flavor t4-small --timeout 1h img `printf -- --flavor=a100-large`",
    "hf jobs run --flavor t4-small --timeout 1h img -- `printf -- --flavor=a100-large`",
    "hf jobs run --flavor t4-small --timeout 1h img $(printf -- --flavor=a100-large)",
    "hf jobs run --flavor t4-small --timeout 1h img *",
    "hf jobs run --flavor t4-small --timeout 1h img ?-flavor=a100-large",
    "hf jobs run --flavor t4-small --timeout 1h img [-]-flavor=a100-large",
    "hf jobs run --flavor t4-small --timeout 1h {--flavor=a100-large,img}",
    "hf jobs run --flavor t4-small --timeout 1h img --flavor={t4-small,a100-large}",
    "hf jobs run --flavor t4-small --timeout 1h img ~+",
    "hf jobs run --flavor t4-small \\\n --timeout 1h img",
    "hf jobs run --flavor t4-small --timeout 1h img --label=~/x",
    "uv run /x/scripts/hf_jobs.py run --hardware-flavor t4-small --timeout $T",
    "hf jobs uv run --flavor t4-small --timeout $T train.py",
    "hf jobs run --flavor t4-small --timeout 1h img 'unbalanced",
    'hf jobs run --flavor t4-small --timeout 1h img "unbalanced',
    "hf jobs run --flavor t4-small --timeout 1h img \\",
    "hf jobs run --flavor t4-small --timeout 1h img\r",
]


@pytest.mark.parametrize("command", INSIDE)
def test_an_expansion_inside_a_spend_is_never_allowed(tmp_path, command):
    write_program(tmp_path)
    (tmp_path / "--flavor=a100-large").write_text("")  # what `*`, `?` and `[-]` expand to
    answer = ask(tmp_path, command, {"HOME": str(tmp_path)})
    assert verdict(answer) == "deny", reason(answer)
    assert "Budget envelope exceeded" not in reason(answer)  # not checked as if the words were plain


@pytest.mark.parametrize("command", [
    "eval \"$(printf aGYgam9icyBydW4= | base64 -d)\"",  # a spend it cannot see: still never allowed
    "ls $HOME", "echo `date`", "git log > log.txt", "for f in a b; do echo $f; done", "cd $X",
])
def test_what_it_cannot_read_and_sees_no_spend_in_defers(tmp_path, command):
    write_program(tmp_path)
    assert ask(tmp_path, command, {"HOME": str(tmp_path)}) is None


def test_without_an_envelope_an_unread_command_defers(tmp_path):
    assert ask(tmp_path, "echo $(hf jobs run --flavor a100-large img)") is None


# --- cd: the guard checks the envelope of every folder the command runs in ------------


def loose(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_program(folder, {**ENVELOPE, "allowed_flavors": ["t4-small", "a100-large"]})
    return folder


BAD_JOB = "hf jobs run --flavor a100-large --timeout 1h img"


def test_cd_into_a_looser_program_does_not_loosen(tmp_path):
    write_program(tmp_path)
    loose(tmp_path / "loose")
    answer = ask(tmp_path, f"cd loose && {BAD_JOB}")
    assert verdict(answer) == "deny" and str(tmp_path / "program.md") in reason(answer)
    assert verdict(ask(tmp_path / "loose", BAD_JOB)) == "allow"  # the loose one alone allows it


def test_cd_out_of_the_envelope_does_not_escape_it(tmp_path):
    write_program(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    assert verdict(ask(tmp_path, f"cd elsewhere && {BAD_JOB}")) == "deny"
    assert verdict(ask(tmp_path, f"cd / && {BAD_JOB}")) == "deny"


@pytest.mark.parametrize("command, home_strict", [
    (f"cd && {BAD_JOB}", True),  # bare cd goes $HOME
    (f"cd ~ && {BAD_JOB}", True),
    (f"cd ~/ && {BAD_JOB}", True),
    (f"cd '~' && {BAD_JOB}", False),  # quoted: the folder named ~ in the working folder
    (f"cd \\~ && {BAD_JOB}", False),
    (f"cd ./~ && {BAD_JOB}", False),
    (f"cd d/link/.. && {BAD_JOB}", False),  # logical: back to d, not to the parent of the link's target
    (f"cd d/link/../link/../ && {BAD_JOB}", False),
])
def test_cd_goes_where_bash_goes(tmp_path, command, home_strict):
    """The working folder has no program.md; bash's cd lands in a strict one. A guard that
    got cd wrong would read a loose program.md (allow) or none (defer)."""
    work, home = tmp_path / "work", tmp_path / "home"
    (work / "d").mkdir(parents=True)
    write_program(work / "d")
    (tmp_path / "real" / "sub").mkdir(parents=True)
    loose(tmp_path / "real")  # where a physical `..` from d/link lands
    (work / "d" / "link").symlink_to(tmp_path / "real" / "sub", target_is_directory=True)
    for folder, strict in ((home, home_strict), (work / "~", not home_strict)):
        loose(folder)
        if strict:
            write_program(folder)
    answer = ask(work, command, {"HOME": str(home)})
    assert verdict(answer) == "deny" and "flavor 'a100-large'" in reason(answer), reason(answer)


@pytest.mark.parametrize("command, environ", [
    (f"cd && {BAD_JOB}", {}),  # HOME unset: bash would fail the cd
    (f"cd ~ && {BAD_JOB}", {}),
    (f"cd - && {BAD_JOB}", {}),  # the shell's OLDPWD is not this command's to know
    (f"cd sub && {BAD_JOB}", {"CDPATH": "/somewhere"}),  # CDPATH could send it anywhere
    (f"cd missing && {BAD_JOB}", {}),  # a failed cd leaves the rest running where it was
    (f"cd -P sub && {BAD_JOB}", {}),
    (f"cd sub other && {BAD_JOB}", {}),
    (f"cd sub | {BAD_JOB}", {}),  # a cd in a pipeline changes only its subshell
    (f"CDPATH=/x cd sub && {BAD_JOB}", {}),
    (f"HOME=/tmp; cd && {BAD_JOB}", {}),
    (f"pushd sub && {BAD_JOB}", {}),
    (f"cd ~+ && {BAD_JOB}", {"HOME": "/"}),
    (f"cd +1 && {BAD_JOB}", {}),  # zsh: the directory stack
])
def test_a_cd_it_cannot_follow_is_never_allowed(tmp_path, command, environ):
    (tmp_path / "sub").mkdir()
    (tmp_path / "+1").mkdir()
    write_program(tmp_path)
    for job in (BAD_JOB, HF_RUN):
        answer = ask(tmp_path, command.replace(BAD_JOB, job), environ)
        assert verdict(answer) == "deny", reason(answer)
        assert "cannot check this command" in reason(answer)


@pytest.mark.parametrize("command", [
    f"cd sub && {HF_RUN}", f"cd ./sub/ && {HF_RUN}", f"cd sub/.. && {HF_RUN}", f"cd ~/sub && {HF_RUN}",
    f"cd && cd sub && cd - && {HF_RUN}", f"cd -- sub && {HF_RUN}", f"cd -L sub; {HF_RUN}", f"cd {{root}} && {HF_RUN}",
    f"cd '{{root}}/s p' && {HF_RUN}", f"cd \"s p\" && {HF_RUN}", f"cd s\\ p && {HF_RUN}",
])
def test_honest_cds_are_followed(tmp_path, command):
    write_program(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "s p").mkdir()
    answer = ask(tmp_path, command.format(root=tmp_path), {"HOME": str(tmp_path)})
    assert verdict(answer) == "allow", reason(answer)


# --- The reader agrees with bash -------------------------------------------------------

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def bash(script: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {"HOME": str(home), "PWD": str(cwd), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run([BASH, "--norc", "--noprofile", "-c", script], cwd=cwd, env=env, capture_output=True,
                          timeout=30)


@needs_bash
@pytest.mark.parametrize("words", [
    "a b  c", "'a b' \"c d\" e\\ f", "'' \"\"", "a'b'\"c\"d", '"a\\"b" "a\\\\b" "a\\$b" "a\\`b" "a\\b"',
    "'a\\b' 'a\"b' \"a'b\"", "\\'a \\\"b \\\\c", "~ ~/x ~root ~root/x '~' \"~\"/x ~\"/x\" \\~/x ~nouser-zz/x",
    "a~b x=y --f=y ]x x] ^x %x @x ,x", "tab\there", "ünï ∞", "'multi\nline'", '"multi\nline"',
])
def test_words_are_the_words_bash_passes(tmp_path, words):
    from mlr_action.commands.guard_shell import read

    printf = shutil.which("printf")  # the program, not the builtin: the guard refuses builtins it does not model
    [[command]] = read(f"{printf} '%s\\0' {words}", home=str(tmp_path))
    done = bash(f"{printf} '%s\\0' {words}", tmp_path, tmp_path)
    assert done.returncode == 0, done.stderr
    assert list(command.words[2:]) == done.stdout.decode().split("\0")[:-1]


@needs_bash
@pytest.mark.parametrize("args", [
    "", "~", "sub", "sub/", "./sub", "sub/..", "sub/../sub/.", "d/link/..", "d/link/../../sub", "d/link",
    "d/link/../link/..", "/", "..", "../..", "-- sub", "-L sub", "-L -- sub", "~/sub", "'s p'", "///", "./.././x/./sub",
])
def test_cd_lands_where_bash_lands(tmp_path, args):
    from mlr_action.commands.guard_shell import change_dir, read

    work = tmp_path / "w" / "x"
    for folder in (work / "sub", work / "s p", tmp_path / "real" / "sub", work / "d"):
        folder.mkdir(parents=True)
    (work / "d" / "link").symlink_to(tmp_path / "real" / "sub", target_is_directory=True)
    [[command]] = read(f"cd {args}", home=str(work))
    ours = change_dir(command.words[1:], cwd=str(work), oldpwd=None, home=str(work), cdpath=None)
    done = bash(f"cd {args} && pwd", work, work)
    assert done.returncode == 0, done.stderr
    assert ours == done.stdout.decode().strip()


@needs_bash
def test_cd_minus_lands_where_bash_lands(tmp_path):
    from mlr_action.commands.guard_shell import change_dir

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = change_dir(["a"], cwd=str(tmp_path), oldpwd=None, home=None, cdpath=None)
    second = change_dir(["../b"], cwd=first, oldpwd=str(tmp_path), home=None, cdpath=None)
    for args in (["-"], ["--", "-"]):
        ours = change_dir(args, cwd=second, oldpwd=first, home=None, cdpath=None)
        done = bash(f"cd a && cd ../b && cd {' '.join(args)} >/dev/null && pwd", tmp_path, tmp_path)
        assert ours == done.stdout.decode().strip() == str(tmp_path / "a")


# --- The real `mlr guard` process, hook JSON on stdin ----------------------------------


@pytest.mark.parametrize("command, expected", [
    ("hf jobs run --flavor t4-small --timeout 1h img `printf -- --flavor=a100-large`", "deny"),
    ("eval 'hf jobs run --flavor t4-small --timeout 1h img'", "deny"),
    ("cd '~' && hf jobs run --flavor a100-large --timeout 1h img", "deny"),
    ("cd sub && hf jobs run --flavor t4-small --timeout 1h img", "allow"),
])
def test_mlr_guard_process(tmp_path, command, expected):
    write_program(tmp_path)
    (tmp_path / "~").mkdir()
    (tmp_path / "sub").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_PROJECT_DIR"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    payload = json.dumps({"session_id": "s", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                          "tool_input": {"command": command}, "cwd": str(tmp_path)})
    done = subprocess.run([sys.executable, "-m", "mlr_action", "guard"], input=payload, capture_output=True,
                          text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hookSpecificOutput"]["permissionDecision"] == expected
