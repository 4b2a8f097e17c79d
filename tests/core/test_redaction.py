"""mlr_action.core.redaction: the environment's tokens in every disguise, and nothing else, are masked.

The attack: a job's code prints its token encoded or wrapped so that a
search for the plain value misses it. Each disguise (tests/disguises.py) of
each kind of token is redacted; the oracle decodes the result and finds no
16 bytes of the token. Ordinary log text is left exactly as it was.
"""

from __future__ import annotations

import ast
import base64
import random
import string
from pathlib import Path

import pytest

from disguises import disguises, exposed
from mlr_action.core.redaction import MASK, SECRET_ENV_VARS, redact, secret_values

ALNUM = string.ascii_letters + string.digits


def _random(alphabet: str, n: int, seed: int) -> str:
    rnd = random.Random(seed)
    return "".join(rnd.choice(alphabet) for _ in range(n))


TOKENS = {  # built at run time: no token-shaped literal is committed
    "hf": ("HF_TOKEN", "hf_" + _random(ALNUM, 34, 11)),
    "github": ("GITHUB_TOKEN", "ghs_" + _random(ALNUM, 36, 12)),
    "github-input": ("INPUT_GITHUB_TOKEN", "github_pat_" + _random(ALNUM + "_", 70, 13)),
    "gh-cli": ("GH_TOKEN", "gho_" + _random(ALNUM, 36, 14)),
    "anthropic": ("ANTHROPIC_API_KEY", "sk-ant-api03-" + _random(ALNUM + "-_", 60, 15)),
    "opaque": ("HF_TOKEN", "opaque-" + _random(ALNUM + "+/=.~", 25, 16)),  # only the environment says it is secret
    "short": ("GITHUB_TOKEN", _random(ALNUM, 9, 17)),  # the shortest value treated as a secret
    "non-ascii": ("ANTHROPIC_API_KEY", "clé-" + _random(ALNUM, 12, 18) + "-ünï"),
}
KINDS = [f"{i:02d}-{line.split()[0]}" for i, line in enumerate(disguises("x" * 20))]


@pytest.mark.parametrize("token", TOKENS)
@pytest.mark.parametrize("kind", range(len(KINDS)), ids=KINDS)
def test_every_disguise_of_a_secret_is_masked(monkeypatch, token, kind):
    name, value = TOKENS[token]
    monkeypatch.setenv(name, value)
    line = disguises(value)[kind]
    printed = f"step 3 loss=0.25\n{line}\nstep 4 loss=0.24\n"
    assert exposed(printed, {name: value}) == [name]  # the oracle sees it before
    redacted = redact(printed)
    assert exposed(redacted, {name: value}) == [], redacted
    assert MASK in redacted and redacted.startswith("step 3 loss=0.25\n") and redacted.endswith("step 4 loss=0.24\n")


def test_a_secret_inside_any_longer_base64_blob_is_masked_at_every_offset(monkeypatch):
    value = "opaque-" + _random(ALNUM, 30, 21)
    monkeypatch.setenv("HF_TOKEN", value)
    for before in range(0, 7):
        for after in range(0, 4):
            blob = base64.b64encode(b"p" * before + value.encode() + b"s" * after).decode()
            for encoded in (blob, blob.rstrip("="), base64.urlsafe_b64encode(b"\xfb\xff" * before + value.encode()).decode()):
                assert exposed(redact(f"auth={encoded};"), {"HF_TOKEN": value}) == [], (before, after, encoded)


def test_a_secret_wrapped_at_every_column_is_masked(monkeypatch):
    value = "opaque-" + _random(ALNUM, 30, 22)
    monkeypatch.setenv("GH_TOKEN", value)
    hexed = value.encode().hex()
    for cut in range(1, len(value)):
        for brk in ("\n", "\r\n", "\r", "\n    ", "\n\t", "\n\n"):
            assert redact(f"x {value[:cut]}{brk}{value[cut:]} y") == f"x {MASK} y"
    for cut in range(1, len(hexed), 7):
        assert exposed(redact(f"{hexed[:cut]}\n{hexed[cut:]}"), {"GH_TOKEN": value}) == []


def test_masking_keeps_the_text_around_the_secret(monkeypatch):
    value = "opaque-" + _random(ALNUM, 24, 23)
    monkeypatch.setenv("HF_TOKEN", value)
    text = f"line one\n  token={value[:10]}\n  {value[10:]} done\nline three\n"
    assert redact(text) == f"line one\n  token={MASK} done\nline three\n"
    assert redact(f"a {value} b {value.encode().hex().upper()} c") == f"a {MASK} b {MASK} c"


def test_ordinary_log_text_is_left_alone(monkeypatch):
    for name, (env, value) in TOKENS.items():
        monkeypatch.setenv(env if name != "opaque" else "GH_TOKEN", value)
    rnd = random.Random(5)
    lines = [
        "epoch 1 step 200 loss=0.4312 lr=3.0e-04 45%|####      | 200/440 [00:12<00:14, 16.5it/s]",
        "Saved checkpoint to /tmp/out/checkpoint-200 (sha256 " + "".join(rnd.choice("0123456789abcdef") for _ in range(64)) + ")",
        "data:image/png;base64," + base64.b64encode(bytes(rnd.randrange(256) for _ in range(300))).decode(),
        "url=https://huggingface.co/datasets/me/data/resolve/main/train%2Fpart-0001.parquet?download=true",
        "path C:\\Users\\me\\x41\\u0042 and 100% done, basic training, a bearer of news",
        "eval_accuracy=0.9123",
    ]
    text = "\n".join(lines) + "\n"
    assert redact(text) == text


def test_short_values_and_unset_variables_mask_nothing(monkeypatch):
    for name in SECRET_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN", "training")  # 8 characters: an ordinary word, not treated as a secret
    assert secret_values() == ()
    assert redact("training 74726169 dHJhaW5pbmc=") == "training 74726169 dHJhaW5pbmc="


def test_extra_values_are_masked_like_the_environment_s(monkeypatch):
    for name in SECRET_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    credential = base64.b64encode(b"x-access-token:" + _random(ALNUM, 30, 24).encode()).decode()
    assert redact(f"fatal: header AUTHORIZATION: basic {credential} refused", extra=[credential]) == (
        f"fatal: header AUTHORIZATION: basic {MASK} refused")
    assert redact(f"echo {credential[4:40]}", extra=[credential[4:40]]) == f"echo {MASK}"


def test_token_shapes_headers_and_url_passwords_are_masked_without_the_environment(monkeypatch):
    for name in SECRET_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    hf, gh = "hf_" + _random(ALNUM, 34, 25), "ghp_" + _random(ALNUM, 36, 26)
    opaque = _random(ALNUM, 32, 27)
    text = (f"{hf} x{gh} -{gh}\nAuthorization: Bearer {opaque}\nauthorization: Basic {opaque}\n"
            f"git clone https://someone:{opaque}@example.com/r.git\n")
    assert redact(text) == (f"*** x{gh} -***\nAuthorization: Bearer ***\nauthorization: Basic ***\n"
                            "git clone https://someone:***@example.com/r.git\n")


def test_redaction_is_idempotent(monkeypatch):
    name, value = TOKENS["opaque"]
    monkeypatch.setenv(name, value)
    once = redact("\n".join(disguises(value)))
    assert redact(once) == once


def test_the_redaction_module_imports_nothing_from_mlr_action():
    """The low layer: everything may import it, it imports nothing of ours (so no module imports upward for it)."""
    root = Path(__file__).resolve().parents[2] / "mlr_action"
    tree = ast.parse((root / "core" / "redaction.py").read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith("mlr_action")}
    for path in root.rglob("*.py"):
        assert "from mlr_action.render.reports import redact" not in path.read_text(), path
