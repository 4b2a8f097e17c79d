"""Small program.md texts for tests."""

from __future__ import annotations

import yaml

ENVELOPE = {
    "max_jobs": 12,
    "max_walltime": "8h",
    "allowed_flavors": ["t4-small", "a10g-large"],
    "max_timeout": "2h",
    "allow_deletes": False,
    "output_repos": ["me/sweep-*"],
}
CAMPAIGN = {
    "metric": "eval_accuracy",
    "direction": "maximize",
    "target": 0.95,
    "patience": 3,
    "script": "train.py",
    "params": {
        "lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True},
        "batch_size": {"type": "int", "low": 4, "high": 64},
        "scheduler": {"choices": ["linear", "cosine"]},
    },
    "fixed": {"epochs": 3},
    "flavor": "a10g-large",
    "timeout": "1h",
}


def program_text(envelope: dict | None = None, campaign: dict | None = None, *, prose: str = "## Goal\n\nBe accurate.\n") -> str:
    env = ENVELOPE if envelope is None else envelope
    camp = CAMPAIGN if campaign is None else campaign
    return (
        f"# Test campaign\n\n{prose}\n"
        f"## Budget envelope\n\n```yaml\n{yaml.safe_dump(env, sort_keys=False)}```\n\n"
        f"## Campaign\n\n```yaml\n{yaml.safe_dump(camp, sort_keys=False)}```\n"
    )


def with_(base: dict, **changes) -> dict:
    out = dict(base)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out
