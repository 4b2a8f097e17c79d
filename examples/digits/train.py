# /// script
# requires-python = ">=3.10"
# dependencies = ["scikit-learn>=1.3"]
# ///
"""Train a small MLP on scikit-learn's bundled digits dataset and print eval_accuracy.

The example campaign in this folder (see program.md) searches over the
arguments below. Each job runs this script as

    python train.py --learning_rate_init=0.003 --hidden=32 --alpha=1e-4 \
        --activation=relu --max_iter=40 --seed=0

and the campaign reads the single final line ``eval_accuracy=<float>``.

No network access is needed: the digits data ships with scikit-learn. The
train/validation split is fixed (it does not depend on --seed), so every
experiment is scored on the same 450 held-out images.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

SPLIT_SEED = 0  # the validation split never changes between experiments
VAL_FRACTION = 0.25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # searched (params in program.md)
    p.add_argument("--learning_rate_init", type=float, default=1e-3, help="Adam step size (log scale)")
    p.add_argument("--hidden", type=int, default=32, help="units in the single hidden layer")
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty (log scale)")
    p.add_argument("--activation", choices=["relu", "tanh", "logistic"], default="relu")
    # fixed in program.md
    p.add_argument("--max_iter", type=int, default=40, help="training epochs")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="weight init and shuffling seed")
    args = p.parse_args(argv)
    if not args.learning_rate_init > 0:
        p.error("--learning_rate_init must be > 0")
    if args.hidden < 1:
        p.error("--hidden must be >= 1")
    if args.alpha < 0:
        p.error("--alpha must be >= 0")
    if args.max_iter < 1:
        p.error("--max_iter must be >= 1")
    if args.batch_size < 1:
        p.error("--batch_size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()

    # Only printed, for the job log: this example never talks to the Hub.
    print(
        "campaign {} iter {} output_repo {}".format(
            os.environ.get("MLR_CAMPAIGN", "-"),
            os.environ.get("MLR_ITER", "-"),
            os.environ.get("MLR_OUTPUT_REPO", "-") or "-",
        ),
        flush=True,
    )
    print("config " + " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())), flush=True)

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    # The matrices are tiny: one BLAS thread is as fast and stays fast when
    # other jobs share the machine.
    threadpool_limits(limits=1)

    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities are 0..16
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=VAL_FRACTION, stratify=y, random_state=SPLIT_SEED
    )
    print(f"data train={len(y_train)} val={len(y_val)} features={X.shape[1]}", flush=True)

    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden,),
        activation=args.activation,
        solver="adam",
        alpha=args.alpha,
        learning_rate_init=args.learning_rate_init,
        batch_size=args.batch_size,
        random_state=args.seed,
    )
    classes = np.unique(y)
    every = max(1, args.max_iter // 5)
    with np.errstate(all="ignore"):
        for epoch in range(1, args.max_iter + 1):
            model.partial_fit(X_train, y_train, classes=classes)
            if epoch % every == 0 or epoch == args.max_iter:
                acc = model.score(X_val, y_val)
                print(f"epoch {epoch}/{args.max_iter} loss {model.loss_:.4f} val_acc {acc:.4f}", flush=True)
        accuracy = float(model.score(X_val, y_val))

    print(f"done in {time.perf_counter() - start:.2f}s", flush=True)
    print(f"eval_accuracy={accuracy:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
