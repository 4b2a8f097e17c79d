"""Train a support-vector classifier on a bundled scikit-learn table and print eval_accuracy.

    python train.py --config configs/default.yaml --kernel=rbf --C=3.0 --gamma=0.01

Settings come from the YAML config; any key of its `model` or `train` section
can be overridden as --key=value. The last line is `eval_accuracy=<float>`,
which the campaign in program.md reads. Nothing is downloaded: the data ships
with scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import yaml

from data import load_splits
from model import build_model, count_support_vectors


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, dict[str, str]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/default.yaml", help="YAML file with data/model/train sections")
    args, rest = p.parse_known_args(argv)
    overrides = {}
    for item in rest:
        if not item.startswith("--") or "=" not in item:
            p.error(f"expected --key=value, got {item!r}")
        key, value = item[2:].split("=", 1)
        overrides[key] = value
    return args, overrides


def load_config(path: str, overrides: dict[str, str]) -> dict:
    with open(path, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    for key, text in overrides.items():
        section = next((s for s in ("model", "train") if key in cfg[s]), None)
        if section is None:
            raise SystemExit(f"--{key}: not a setting of {path} (model: {', '.join(cfg['model'])})")
        cfg[section][key] = yaml.safe_load(text)  # "0.1" -> 0.1, "false" -> False
    return cfg


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_args(argv)
    cfg = load_config(args.config, overrides)
    print(f"config: {json.dumps(cfg['model'], sort_keys=True)}", flush=True)
    print(f"run: campaign={os.environ.get('MLR_CAMPAIGN', '-')} iter={os.environ.get('MLR_ITER', '-')}", flush=True)

    splits = load_splits(cfg["data"])
    model = build_model(cfg["model"], seed=cfg["train"]["seed"])
    start = time.perf_counter()
    model.fit(splits.x_train, splits.y_train)
    train_acc = model.score(splits.x_train, splits.y_train)
    val_acc = model.score(splits.x_val, splits.y_val)
    seconds = time.perf_counter() - start

    out = Path(cfg["train"]["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"eval_accuracy": round(val_acc, 6), "train_accuracy": round(train_acc, 6),
               "support_vectors": count_support_vectors(model), "fit_seconds": round(seconds, 3)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(f"train_acc={train_acc:.4f} support_vectors={metrics['support_vectors']} fit={seconds:.3f}s", flush=True)
    print(f"eval_accuracy={val_acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
