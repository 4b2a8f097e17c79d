"""Gradient-boosted trees on a synthetic regression task; logs the validation RMSE."""
import logging
from pathlib import Path

import click
import numpy as np
from sklearn.datasets import make_regression
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.model_selection import train_test_split

log = logging.getLogger("train")


@click.command()
@click.option("--learning-rate", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.1, show_default=True,
              help="Shrinkage applied to each tree.")
@click.option("--n-estimators", type=click.IntRange(min=1), default=40, show_default=True, help="Boosting rounds.")
@click.option("--max-depth", type=int, default=3, show_default=True, help="Depth of each tree.")
@click.option("--subsample", default=1.0, show_default=True, help="Fraction of rows each tree sees.")
@click.option("--loss", type=click.Choice(["squared_error", "absolute_error", "huber"]), default="squared_error")
@click.option("--seed", default=0, help="Random seed.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data"),
              help="Where a real run reads its data.")
@click.option("-v", "--verbose", is_flag=True, help="Log every stage.")
def main(learning_rate, n_estimators, max_depth, subsample, loss, seed, data_dir, verbose):
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    X, y = make_regression(n_samples=300, n_features=12, noise=8.0, random_state=3)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=3)
    model = GradientBoostingRegressor(
        learning_rate=learning_rate, n_estimators=n_estimators, max_depth=max_depth,
        subsample=subsample, loss=loss, random_state=seed,
    )
    log.debug("fitting on %d rows (data dir %s)", len(X_train), data_dir)
    model.fit(X_train, y_train)
    rmse = float(np.sqrt(np.mean((model.predict(X_val) - y_val) ** 2)))
    log.info("val_rmse=%.4f", rmse)


if __name__ == "__main__":
    main()
