"""Train a small MLP classifier on a synthetic tabular task and report validation F1.

Usage:
    python train.py --learning-rate 3e-3 --hidden-units 64 --activation tanh
"""

import argparse
import time
import warnings

from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier


def build_parser():
    parser = argparse.ArgumentParser(description="MLP on a synthetic classification task")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="initial Adam step size")
    parser.add_argument("--batch-size", type=int, default=32, help="minibatch size")
    parser.add_argument("--hidden-units", type=int, default=32, help="width of the hidden layer")
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--activation", type=str, default="relu", choices=["relu", "tanh", "logistic"])
    parser.add_argument("--max-epochs", type=int, default=15, help="passes over the training set")
    parser.add_argument("--early-stopping", action="store_true", help="stop when the validation score stalls")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", type=str, default="outputs", help="where a real run would save the model")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main():
    args = build_parser().parse_args()
    X, y = make_classification(n_samples=600, n_features=20, n_informative=8, random_state=7)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=7)
    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden_units,),
        activation=args.activation,
        alpha=args.alpha,
        batch_size=args.batch_size,
        learning_rate_init=args.learning_rate,
        max_iter=args.max_epochs,
        early_stopping=args.early_stopping,
        random_state=args.seed,
    )
    start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    if args.verbose:
        print(f"trained in {time.time() - start:.2f}s, final train loss {model.loss_:.4f}")
    val_f1 = f1_score(y_val, model.predict(X_val))
    print(f"train_loss={model.loss_:.4f}")
    print(f"val_f1={val_f1:.4f}")


if __name__ == "__main__":
    main()
