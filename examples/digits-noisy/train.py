# /// script
# requires-python = ">=3.10"
# dependencies = ["scikit-learn>=1.3"]
# ///
"""Train a small MLP on few digits images: a noisy validation score, and a held-out test split.

The example campaign in this folder (see program.md) searches over the
arguments below on a deliberately small problem: 300 training images and 150
validation images, so one run's ``eval_accuracy`` moves by a point or two
with the seed alone. The search scores configs on the validation split:

    python train.py --learning_rate_init=0.01 --hidden=64 --alpha=1e-4 \
        --max_iter=30 --batch_size=32 --seed=0 --split=val

and reads the last line, ``eval_accuracy=<float>``. The final evaluation runs
the best config again with other seeds on the 540 test images, which the
search never sees (``--split=test``), and reads ``test_accuracy=<float>``.

The three splits are fixed (they do not depend on --seed). No network access
is needed: the digits data ships with scikit-learn.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

SPLIT_SEED = 0  # the splits never change between runs
TEST_FRACTION = 0.3  # 540 of the 1797 images, used only by the final evaluation
TRAIN_IMAGES = 300  # few on purpose: the seed matters
VAL_IMAGES = 150


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # searched (params in program.md)
    p.add_argument("--learning_rate_init", type=float, default=1e-2, help="Adam step size (log scale)")
    p.add_argument("--hidden", type=int, default=64, help="units in the single hidden layer")
    p.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty (log scale)")
    # fixed in program.md
    p.add_argument("--max_iter", type=int, default=30, help="training epochs")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="weight init and shuffling seed")
    p.add_argument("--split", choices=["val", "test"], default="val", help="where the score is measured")
    args = p.parse_args(argv)
    if not args.learning_rate_init > 0:
        p.error("--learning_rate_init must be > 0")
    if args.hidden < 1:
        p.error("--hidden must be >= 1")
    if args.alpha < 0:
        p.error("--alpha must be >= 0")
    if args.max_iter < 1 or args.batch_size < 1:
        p.error("--max_iter and --batch_size must be >= 1")
    return args


def splits():
    """(train, validation, test) arrays; the same for every run."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities are 0..16
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=TEST_FRACTION, stratify=y,
                                                      random_state=SPLIT_SEED)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, train_size=TRAIN_IMAGES, test_size=VAL_IMAGES,
                                                      stratify=y_rest, random_state=SPLIT_SEED)
    return (X_train, y_train), (X_val, y_val), (X_test, y_test)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    print("campaign {} iter {}".format(os.environ.get("MLR_CAMPAIGN", "-"), os.environ.get("MLR_ITER", "-")),
          flush=True)
    print("config " + " ".join(f"{k}={v}" for k, v in sorted(vars(args).items())), flush=True)

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    threadpool_limits(limits=1)  # tiny matrices: one BLAS thread is as fast, and polite to other jobs
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    (X_train, y_train), (X_val, y_val), (X_test, y_test) = splits()
    X_eval, y_eval = (X_test, y_test) if args.split == "test" else (X_val, y_val)
    print(f"data train={len(y_train)} {args.split}={len(y_eval)}", flush=True)
    model = MLPClassifier(hidden_layer_sizes=(args.hidden,), solver="adam", alpha=args.alpha,
                          learning_rate_init=args.learning_rate_init, batch_size=args.batch_size,
                          random_state=args.seed)
    classes = np.unique(y_train)
    with np.errstate(all="ignore"):
        for epoch in range(1, args.max_iter + 1):
            model.partial_fit(X_train, y_train, classes=classes)
            if epoch % 10 == 0 or epoch == args.max_iter:
                print(f"epoch {epoch}/{args.max_iter} loss {model.loss_:.4f}", flush=True)
        accuracy = float(model.score(X_eval, y_eval))
    print(f"done in {time.perf_counter() - start:.2f}s", flush=True)
    name = "test_accuracy" if args.split == "test" else "eval_accuracy"
    print(f"{name}={accuracy:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
