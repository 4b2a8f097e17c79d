"""Softmax regression trained with minibatch SGD in numpy; prints the test accuracy."""
from enum import Enum
from typing import Annotated

import numpy as np
import typer

app = typer.Typer(add_completion=False)


class Optimizer(str, Enum):
    sgd = "sgd"
    momentum = "momentum"


def make_data(rng, n=900, features=10, classes=3):
    centers = rng.normal(scale=0.45, size=(classes, features))
    labels = rng.integers(0, classes, size=n)
    points = centers[labels] + rng.normal(size=(n, features))
    return points, labels


@app.command()
def main(
    lr: Annotated[float, typer.Option(min=0.0, help="Step size.")] = 0.05,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = 20,
    batch_size: int = typer.Option(32, help="Examples per step."),
    l2: float = typer.Option(1e-3, help="Weight decay."),
    optimizer: Optimizer = Optimizer.sgd,
    seed: int = 0,
    quiet: bool = typer.Option(False, "--quiet", help="Only print the final metric."),
):
    rng = np.random.default_rng(seed)
    X, y = make_data(np.random.default_rng(1234))
    X_train, y_train, X_test, y_test = X[:700], y[:700], X[700:], y[700:]
    W = np.zeros((X.shape[1], 3))
    velocity = np.zeros_like(W)
    for epoch in range(epochs):
        order = rng.permutation(len(X_train))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            logits = X_train[idx] @ W
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            probs[np.arange(len(idx)), y_train[idx]] -= 1.0
            grad = X_train[idx].T @ probs / len(idx) + l2 * W
            if optimizer is Optimizer.momentum:
                velocity = 0.9 * velocity - lr * grad
                W += velocity
            else:
                W -= lr * grad
        if not quiet:
            train_acc = float(((X_train @ W).argmax(axis=1) == y_train).mean())
            typer.echo(f"epoch {epoch + 1}/{epochs} train_acc {train_acc:.3f}")
    test_accuracy = float(((X_test @ W).argmax(axis=1) == y_test).mean())
    print(f"test_accuracy: {test_accuracy:.4f}")


if __name__ == "__main__":
    app()
