"""action.yml and every workflow: schema-valid, no expressions inside scripts, least privilege, pinned."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlr_action.github import action

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml")) + sorted((ROOT / "examples" / "workflows").glob("*.yml"))
USER_WORKFLOW = ROOT / "examples" / "workflows" / "mlr.yml"
VALIDATE_WORKFLOW = ROOT / "examples" / "workflows" / "mlr-validate.yml"
PERMISSIONS = {
    "mlr.yml": {"contents": "write", "issues": "write", "pull-requests": "write"},
    "mlr-validate.yml": {"contents": "read", "pull-requests": "write"},
    "ci.yml": {"contents": "read"},
    "self-test.yml": {"contents": "read"},
}
SHA_PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as true
        data["on"] = data.pop(True)
    return data


def steps_of(doc: dict) -> list[dict]:
    if "runs" in doc:
        return doc["runs"].get("steps", [])
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


ALL = [ACTION, *WORKFLOWS]


def test_the_files_exist():
    assert {p.name for p in WORKFLOWS} == set(PERMISSIONS)


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_no_expression_is_pasted_into_a_script(path):
    """Inputs and event data reach scripts only through env:, so none can inject shell code."""
    for step in steps_of(load(path)):
        script = step.get("run", "")
        assert "${{" not in script, f"{path.name}: step {step.get('name') or step.get('id')} has ${{{{ }}}} in run:"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_remote_action_is_pinned_by_commit(path):
    for step in steps_of(load(path)):
        uses = step.get("uses")
        if not uses or uses.startswith("./") or uses.startswith("mlr-action/mlr-action@"):
            continue
        assert SHA_PINNED.match(uses), f"{path.name}: {uses} is not pinned to a commit SHA"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_minimal(path):
    doc = load(path)
    assert doc.get("permissions") == PERMISSIONS[path.name]
    for name, job in doc["jobs"].items():
        extra = job.get("permissions")
        assert extra is None or all(doc["permissions"].get(k) == v or v == "read" for k, v in extra.items()), name


def test_the_user_workflow():
    doc = load(USER_WORKFLOW)
    on = doc["on"]
    minutes = [cron["cron"].split()[0] for cron in on["schedule"]]
    assert all("0" not in m.split(",") and not m.startswith("*") for m in minutes), "schedule off the full hour"
    assert "workflow_dispatch" in on and on["push"]["paths"] == ["program.md"]
    assert doc["concurrency"] == {"group": "mlr-${{ github.repository }}", "cancel-in-progress": False}
    [step] = [s for s in steps_of(doc) if s.get("uses", "").startswith("mlr-action/")]
    assert step["env"] == {"HF_TOKEN": "${{ secrets.HF_TOKEN }}", "ANTHROPIC_API_KEY": "${{ secrets.ANTHROPIC_API_KEY }}",
                           "MLR_WAKE_TOKEN": "${{ secrets.MLR_WAKE_TOKEN }}"}
    # the job wake-up dispatches this workflow with a `reason` input (mlr_action.job.wakeup), and its runs wait in
    # the concurrency group like any other
    assert on["workflow_dispatch"]["inputs"]["reason"]["required"] is False
    [job] = doc["jobs"].values()
    assert job["timeout-minutes"] >= 10 + 5, "the default linger (10m) plus the step fits the job's time limit"
    assert "secrets." not in yaml.safe_dump(step.get("with", {}))


def test_the_validate_workflow_has_no_secrets_and_runs_on_every_pull_request():
    text = VALIDATE_WORKFLOW.read_text()
    assert "secrets." not in text
    doc = load(VALIDATE_WORKFLOW)
    assert doc["on"] == {"pull_request": None}  # no paths filter: a pull request may change only the training script
    [step] = [s for s in steps_of(doc) if s.get("uses", "").startswith("mlr-action/")]
    assert step["with"] == {"command": "validate"}


def test_action_inputs_all_reach_the_entry_point_through_env():
    doc = load(ACTION)
    inputs = set(doc["inputs"]) - {"python-version"}
    assert inputs == set(action.DEFAULTS)
    for name, default in action.DEFAULTS.items():
        if name != "github-token":
            assert str(doc["inputs"][name]["default"]) == default, name
    runs = [s for s in doc["runs"]["steps"] if "mlr_action.github.action" in s.get("run", "")]
    assert len(runs) == 2  # --check-inputs first, then the real run
    for step in runs:
        assert {k: v for k, v in step["env"].items() if k.startswith("INPUT_")} == {
            action.env_name(n): f"${{{{ inputs.{n} }}}}" for n in inputs}
    first = doc["runs"]["steps"][0]
    assert "--check-inputs" in first["run"], "inputs are validated before anything else"
    assert set(doc["outputs"]) >= {"state", "iter", "best-metric", "jobs-used"}


def test_the_docs_show_the_workflows_as_they_are():
    docs = (ROOT / "docs" / "github-action.md").read_text()
    for path in (USER_WORKFLOW, VALIDATE_WORKFLOW):
        assert path.read_text().strip() in docs, f"docs/github-action.md does not show {path.name} as it is"


def _check_jsonschema() -> list[str] | None:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    return [exe] if Path(exe).exists() else None


@pytest.mark.skipif(_check_jsonschema() is None, reason="check-jsonschema is not installed (pip install -e '.[test]')")
@pytest.mark.parametrize("schema, paths", [
    ("vendor.github-actions", [ACTION]),
    ("vendor.github-workflows", WORKFLOWS),
], ids=["action", "workflows"])
def test_schemas(schema, paths):
    """check-jsonschema ships GitHub's schemas, so this runs offline."""
    proc = subprocess.run([*_check_jsonschema(), "--builtin-schema", schema, *map(str, paths)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
