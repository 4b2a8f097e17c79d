"""Ridge regression by gradient descent in numpy, with its options spread over helper functions.

The optimizer's arguments come from add_optimizer_args(), the data's from
add_data_args(); progress goes through the logging module.
"""
import argparse
import logging

import numpy as np

DEFAULT_LR = 3e-2
logger = logging.getLogger(__name__)


def add_optimizer_args(parser):
    group = parser.add_argument_group("optimizer")
    group.add_argument("--lr", type=float, default=DEFAULT_LR, help="gradient step size")
    group.add_argument("--l2", type=float, default=2 * 1e-3, help="ridge penalty")
    group.add_argument("--steps", type=int, default=150, help="gradient steps")
    group.add_argument("--momentum", type=float, default=0.5)


def add_data_args(parser):
    group = parser.add_argument_group("data")
    group.add_argument("--n-features", type=int, default=20, help="features of the synthetic problem")
    group.add_argument("--noise", type=float, default=0.5)
    group.add_argument("--data-seed", type=int, default=0)
    group.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_optimizer_args(parser)
    add_data_args(parser)
    parser.add_argument("--log-every", type=int, default=50)
    parser.set_defaults(momentum=0.8)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main():
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(args.data_seed)
    X = rng.normal(size=(400, args.n_features))
    w_true = rng.normal(size=args.n_features)
    y = X @ w_true + args.noise * rng.normal(size=400)
    if args.standardize:
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    X_train, y_train, X_val, y_val = X[:300], y[:300], X[300:], y[300:]
    w = np.zeros(args.n_features)
    velocity = np.zeros_like(w)
    for step in range(1, args.steps + 1):
        grad = X_train.T @ (X_train @ w - y_train) / len(y_train) + args.l2 * w
        velocity = args.momentum * velocity - args.lr * grad
        w += velocity
        if step % args.log_every == 0:
            logger.info("step %d train_mse=%.4f", step, float(np.mean((X_train @ w - y_train) ** 2)))
    val_mae = float(np.mean(np.abs(X_val @ w - y_val)))
    logger.info("step %d val_mae=%.4f", args.steps, val_mae)


if __name__ == "__main__":
    main()
