"""The campaign folder on HF: uploaded once per content to a private repo, mounted read-only at a pinned revision."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("huggingface_hub")

from loopback.hf_server import FakeHubServer  # noqa: E402
from mlr_action.backends import _hf_http  # noqa: E402
from mlr_action.core.jobs import JobSpec, JobStage, PermanentError, labels_for  # noqa: E402
from mlr_action.backends.hf import HfBackend  # noqa: E402
from mlr_action.job.runner import recipe  # noqa: E402
from mlr_action.job.shipped import from_work_tree  # noqa: E402

TOKEN = "hf_" + "FakeLoopbackToken0123456789abcdef"  # built, so no token-shaped literal is committed
PROJECT = {
    "train.py": ("import json, os, sys\nfrom helpers.model import build\nimport yaml\n"
                 "cfg = yaml.safe_load(open('configs/base.yaml'))\n"
                 "os.makedirs('outputs', exist_ok=True)\nopen('outputs/m.json', 'w').write(json.dumps(cfg))\n"
                 "print('cwd-writable', os.access('.', os.W_OK))\n"
                 "print('eval_accuracy=' + str(build(cfg['scale'])))\n"),
    "helpers/__init__.py": "",
    "helpers/model.py": "def build(scale):\n    return 0.5 * scale\n",
    "configs/base.yaml": "scale: 1.5\n",
    "requirements.txt": "PyYAML>=6\n",
}


@pytest.fixture
def hub():
    with FakeHubServer(token=TOKEN) as hub:
        yield hub


def backend(hub, namespace: str | None = None) -> HfBackend:
    policy = _hf_http.Policy(timeout_s=5.0, backoff_s=0.0, sleep=lambda s: None)
    return HfBackend(endpoint=hub.url, token=TOKEN, namespace=namespace, policy=policy)


def spec_for(folder_dir: Path, iteration: int = 1, files: dict[str, str] = PROJECT, **keys) -> JobSpec:
    for name, text in files.items():
        (folder_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (folder_dir / name).write_text(text)
    folder = from_work_tree(folder_dir)
    campaign = SimpleNamespace(dependencies=keys.get("dependencies", []), python=None, image=keys.get("image"))
    return JobSpec(campaign="proj", iter=iteration, script=str(folder_dir / "train.py"), args=["--lr=0.1"],
                   env={"MLR_OUTPUT_REPO": "me/proj-1"}, flavor="cpu-basic", timeout_s=60,
                   labels=labels_for("proj", iteration), folder=folder, recipe=recipe(folder, "train.py", campaign),
                   script_rel="train.py", folder_hash=folder.digest)


def test_a_multi_file_project_runs_on_hf_from_its_mounted_folder(hub, tmp_path):
    hf = backend(hub)
    job_id = hf.submit(spec=spec_for(tmp_path / "proj"))
    hub.run(job_id, running_secs=2)
    logs = hf.logs(job_id=job_id)
    assert hf.inspect(job_id=job_id).stage is JobStage.COMPLETED, logs
    assert "fake uv: --with-requirements requirements.txt" in logs  # the dependencies as declared
    assert "cwd-writable True" in logs and logs.rstrip().endswith("eval_accuracy=0.75")
    [volume] = hub.jobs[job_id].spec["volumes"]
    repo = hub.git.get("model", "me/mlr-code-proj")
    assert repo.private and volume["readOnly"] and volume["revision"] == repo.head
    assert sorted(p for p in repo.files_at(repo.head) if p.startswith(volume["path"] + "/")) == [
        f"{volume['path']}/{name}" for name in sorted(PROJECT)]


def test_the_folder_is_uploaded_once_per_content_whatever_the_commit(hub, tmp_path):
    hf = backend(hub)
    first = spec_for(tmp_path / "proj")
    hf.submit(spec=first)
    hf2 = backend(hub)  # a later step: a new backend object, nothing cached
    hf2.submit(spec=spec_for(tmp_path / "proj", iteration=2).model_copy(update={"commit": "b" * 40}))
    assert hub.git.commit_count == 1
    [v1, v2] = [j.spec["volumes"][0] for j in hub.jobs.values()]
    assert v1 == v2
    hf2.submit(spec=spec_for(tmp_path / "proj", iteration=3, files={**PROJECT, "helpers/model.py": "def build(s):\n  return s\n"}))
    assert hub.git.commit_count == 2
    v3 = list(hub.jobs.values())[-1].spec["volumes"][0]
    assert v3["path"] != v1["path"] and v3["revision"] != v1["revision"]


def test_a_file_planted_in_the_shipped_folder_on_the_hub_is_never_mounted(hub, tmp_path):
    hf = backend(hub)
    hf.submit(spec=spec_for(tmp_path / "proj"))
    repo = hub.git.get("model", "me/mlr-code-proj")
    oid, files = repo.commits[-1]
    path = next(p.split("/")[0] for p in files if p.endswith("train.py"))
    repo.commits.append(("f" * 40, {**files, f"{path}/train.py": b"print('eval_accuracy=1.0')\n",
                                    f"{path}/sitecustomize.py": b"import os\n"}))
    job_id = backend(hub).submit(spec=spec_for(tmp_path / "proj", iteration=2))
    volume = hub.jobs[job_id].spec["volumes"][0]
    assert volume["revision"] not in ("f" * 40, oid)  # uploaded again, and that commit is the one mounted
    mounted = repo.files_at(volume["revision"])
    assert mounted[f"{path}/train.py"] == PROJECT["train.py"].encode() and f"{path}/sitecustomize.py" not in mounted
    hub.run(job_id, running_secs=1)
    assert backend(hub).logs(job_id=job_id).rstrip().endswith("eval_accuracy=0.75")


def test_a_public_repo_of_that_name_is_refused_before_anything_is_uploaded(hub, tmp_path):
    hub.git.create("model", "me/mlr-code-proj", private=False)
    with pytest.raises(PermanentError, match="me/mlr-code-proj, where the campaign's code is shipped to its jobs, is public"):
        backend(hub).submit(spec=spec_for(tmp_path / "proj"))
    assert hub.git.commit_count == 0 and hub.jobs == {}


def test_an_image_named_in_the_campaign_is_the_jobs_image(hub, tmp_path):
    job_id = backend(hub).submit(spec=spec_for(tmp_path / "proj", image="pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"))
    assert hub.jobs[job_id].spec["dockerImage"] == "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime"


def test_a_module_that_was_not_shipped_fails_the_job_as_it_would_on_hf(hub, tmp_path):
    files = {name: text for name, text in PROJECT.items() if not name.startswith("helpers/")}
    hf = backend(hub)
    job_id = hf.submit(spec=spec_for(tmp_path / "proj", files=files))
    hub.run(job_id, running_secs=1)
    assert hf.inspect(job_id=job_id).stage is JobStage.ERROR
    assert "ModuleNotFoundError: No module named 'helpers'" in hf.logs(job_id=job_id)


def test_a_volume_that_cannot_be_mounted_fails_the_job(hub, tmp_path):
    hf = backend(hub)
    job_id = hf.submit(spec=spec_for(tmp_path / "proj"))
    hub.jobs[job_id].spec["volumes"][0]["revision"] = "0" * 40
    hub.run(job_id, running_secs=1)
    assert hf.inspect(job_id=job_id).stage is JobStage.ERROR and "failed to mount" in hf.logs(job_id=job_id)


def test_the_shipped_files_can_be_downloaded_at_the_pinned_revision(hub, tmp_path):
    from huggingface_hub import hf_hub_download

    job_id = backend(hub).submit(spec=spec_for(tmp_path / "proj"))
    volume = hub.jobs[job_id].spec["volumes"][0]
    path = hf_hub_download("me/mlr-code-proj", f"{volume['path']}/configs/base.yaml", revision=volume["revision"],
                           endpoint=hub.url, token=TOKEN, cache_dir=tmp_path / "cache")
    assert Path(path).read_text() == PROJECT["configs/base.yaml"]
