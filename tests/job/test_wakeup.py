"""The job wake-up (mlr_action.job.wakeup): an HF job that ends dispatches the workflow, over the loopback HF and GitHub.

tests/loopback/hf_server.py runs each job's command for real (bash, the launcher, the script through a uv shim), so the
launcher's dispatch reaches tests/loopback/github_server.py as it would reach GitHub.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("huggingface_hub")

from backend_contract import FAIL, PRINT_ARGS_AND_ENV, make_spec, write_script  # noqa: E402
from loopback.github_server import FakeGitHub  # noqa: E402
from loopback.hf_server import FakeHubServer  # noqa: E402
from mlr_action.backends import _hf_http  # noqa: E402
from mlr_action.backends._hf_ship import ship  # noqa: E402
from mlr_action.backends.hf import HfBackend  # noqa: E402
from mlr_action.core.redaction import redact  # noqa: E402
from mlr_action.job.wakeup import TOKEN_ENV, Wake, wake_for, workflow_of  # noqa: E402

HF = "hf_" + "FakeLoopbackToken0123456789abcdef"
WAKE = "github_pat_" + "11FAKE0WAKE0" + "x" * 40  # built at run time: never a committed token-shaped literal
WORKER = "ghs_" + "w" * 36


class Scripts:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path

    def script(self, body: str) -> str:
        return write_script(self.tmp_path / "scripts", body)


@pytest.fixture
def servers():
    with FakeHubServer(token=HF) as hub, FakeGitHub(owner="me", name="repo", token=WORKER, action_tokens=(WAKE,)) as gh:
        yield hub, gh


def backend(hub, gh, *, workflow="mlr.yml", token=WAKE) -> HfBackend:
    url = f"{gh.base_url}/repos/me/repo/actions/workflows/{workflow}/dispatches"
    policy = _hf_http.Policy(timeout_s=5.0, backoff_s=0.0, sleep=lambda s: None)
    return HfBackend(endpoint=hub.url, token=HF, namespace="me", policy=policy, wake=Wake(url=url, ref="main", token=token))


@pytest.mark.parametrize("body, stage, message", [
    (PRINT_ARGS_AND_ENV, "COMPLETED", None),
    (FAIL, "ERROR", "Job failed with exit code: 3"),  # the script's own status is the job's
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "ERROR", "OOMKilled"),  # killed (137), as by OOM
])
def test_a_job_that_ends_dispatches_the_workflow_whatever_its_exit_status_and_keeps_it(servers, tmp_path, body, stage,
                                                                                      message):
    hub, gh = servers
    job_id = backend(hub, gh).submit(spec=make_spec(Scripts(tmp_path), body))
    assert gh.dispatches == []  # nothing before the job ends
    job = hub.run(job_id)
    assert (job.stage, job.message) == (stage, message)
    assert gh.dispatches == [{"workflow": "mlr.yml", "ref": "main", "inputs": {"reason": "iter 1 ended"}, "token": WAKE}]
    logs = "\n".join(line for _, line in job.logs)
    assert "mlr wake-up sent: the workflow runs the next tick" in logs and WAKE not in logs
    if stage == "COMPLETED":
        assert "eval_accuracy=0.5" in logs and "argv=--lr=0.01 --epochs=3" in logs


def test_the_token_is_a_job_secret_never_plain_environment_an_argument_or_a_label(servers, tmp_path):
    hub, gh = servers
    job_id = backend(hub, gh).submit(spec=make_spec(Scripts(tmp_path)))
    job = hub.jobs[job_id]
    assert job.secrets == {"HF_TOKEN": HF, TOKEN_ENV: WAKE}
    visible = json.dumps({k: v for k, v in job.spec.items() if k != "secrets"})
    assert WAKE not in visible and HF not in visible
    assert job.environment["MLR_WAKE_REF"] == "main"
    assert job.environment["MLR_WAKE_URL"].endswith("/repos/me/repo/actions/workflows/mlr.yml/dispatches")


def test_a_workflow_that_declares_no_reason_input_still_gets_the_bare_dispatch(tmp_path):
    with FakeHubServer(token=HF) as hub, FakeGitHub(owner="me", name="repo", token=WORKER, action_tokens=(WAKE,),
                                                   workflows={"mlr.yml": set()}) as gh:
        hub.run(backend(hub, gh).submit(spec=make_spec(Scripts(tmp_path))))
        assert gh.dispatches == [{"workflow": "mlr.yml", "ref": "main", "inputs": {}, "token": WAKE}]


@pytest.mark.parametrize("workflow, token, said", [
    ("gone.yml", WAKE, "mlr wake-up failed (HTTP 404"),  # no such workflow (or no workflow_dispatch trigger)
    ("mlr.yml", "github_pat_" + "revoked0" * 6, "mlr wake-up failed (HTTP 401"),  # a revoked token
])
def test_a_dispatch_that_fails_never_fails_the_job_and_never_prints_the_token(servers, tmp_path, workflow, token, said):
    hub, gh = servers
    job = hub.run(backend(hub, gh, workflow=workflow, token=token).submit(spec=make_spec(Scripts(tmp_path))))
    logs = "\n".join(line for _, line in job.logs)
    assert job.stage == "COMPLETED" and said in logs and token not in logs
    assert gh.dispatches == []


def test_the_wake_token_may_only_dispatch(servers):
    import urllib.error
    import urllib.request

    hub, gh = servers
    request = urllib.request.Request(f"{gh.base_url}/repos/me/repo/issues", data=b'{"title": "x"}', method="POST",
                                     headers={"Authorization": f"Bearer {WAKE}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 403 and gh.issues == {}


def test_without_the_wake_up_the_launcher_is_unchanged_and_nothing_is_dispatched(servers, tmp_path):
    hub, gh = servers
    spec = make_spec(Scripts(tmp_path))
    plain = ship(spec)
    assert "exec uv run" in plain.command[2] and "MLR_WAKE" not in json.dumps(plain.env) and "MLR_WAKE" not in plain.command[2]
    policy = _hf_http.Policy(timeout_s=5.0, backoff_s=0.0, sleep=lambda s: None)
    job = hub.run(HfBackend(endpoint=hub.url, token=HF, namespace="me", policy=policy).submit(spec=spec))
    assert job.stage == "COMPLETED" and job.secrets == {"HF_TOKEN": HF} and gh.dispatches == []


@pytest.mark.parametrize("wake", [True, False])
def test_the_launcher_forwards_a_termination_to_the_script(tmp_path, wake):
    """HF cancels a job with TERM: the script gets it (and may save a checkpoint), its own exit status is the job's,
    then the workflow is woken. A script that exits at once on TERM is the hard case: the launcher's ``wait`` is cut
    short by the signal (128+15) and the script may be gone before it looks again; a few rounds make that race show."""
    import signal
    import subprocess
    import sys

    from mlr_action.job import runner
    from mlr_action.job.shipped import one_file

    script = ("import os, signal, time\n"
              "signal.signal(signal.SIGTERM, lambda *a: (os.write(1, b'saved\\n'), os._exit(5)))\n"
              "print('ready', flush=True)\ntime.sleep(30)\n")
    folder = one_file("train.py", script.encode())
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(script)
    plan = runner.recipe(folder, "train.py", type("C", (), {"dependencies": (), "python": None, "image": None})())
    program = runner.launcher(plan, "train.py", mount=str(code), wake=wake)
    bin_ = tmp_path / "bin"  # an image with python and no uv
    bin_.mkdir()
    (bin_ / "python").symlink_to(sys.executable)
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "MLR_WAKE_URL": "http://127.0.0.1:9/x", "MLR_WAKE_REF": "main", "MLR_WAKE_TOKEN": ""}
    for _ in range(4):
        proc = subprocess.Popen(["bash", "-c", program, "mlr-job"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 5 and "saved" in out, out
        assert out.rstrip().endswith(f"{runner.SENTINEL}5"), out
        assert ("mlr wake-up failed" in out) == wake, out


# -- the settings --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref, name", [
    ("me/repo/.github/workflows/mlr.yml@refs/heads/main", "mlr.yml"),
    ("me/repo/.github/workflows/ci.yaml@refs/tags/v1", "ci.yaml"),
    ("other/repo/.github/workflows/mlr.yml@refs/heads/main", None),  # a reusable workflow of another repository
    ("me/repo/.github/workflows/../../x.yml@refs/heads/main", None),
    ("", None),
])
def test_the_workflow_is_the_file_the_tick_ran_from(ref, name):
    assert workflow_of(ref, "me/repo") == name


def test_every_missing_setting_is_named_with_its_fix():
    wake, problems = wake_for({"GITHUB_API_URL": "ftp://x"}, workflow="mlr.sh", ref="main")
    assert wake is None and len(problems) == 4
    assert f"secrets.{TOKEN_ENV}" in problems[0] and "'Actions: write'" in problems[0]
    wake, problems = wake_for({TOKEN_ENV: WAKE, "GITHUB_REPOSITORY": "me/repo"}, workflow="mlr.yml", ref="main")
    assert problems == [] and wake.url == "https://api.github.com/repos/me/repo/actions/workflows/mlr.yml/dispatches"
    assert WAKE not in repr(wake.env()) and wake.secrets() == {TOKEN_ENV: WAKE}


def test_the_wake_token_is_redacted_like_every_token(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "plain-" + "w" * 20)  # not token-shaped: masked because it is the variable's value
    assert redact("the token is plain-" + "w" * 20) == "the token is ***"
