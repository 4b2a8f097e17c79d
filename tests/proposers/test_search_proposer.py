"""The search proposer: typed, reproducible, never a duplicate, and it finds good regions."""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import subprocess
import sys

import pytest

from mlr_action.core.ledger import experiment_row
from mlr_action.core.program import parse_program
from mlr_action.proposers import make_proposer
from mlr_action.proposers.search import SearchProposer, ledger_trials, space_key
from mlr_action.core.state import config_key, fold

PROGRAM = """# Sweep

## Budget envelope
```yaml
max_jobs: 24
max_walltime: 24h
allowed_flavors: [t4-small]
max_timeout: 1h
```

## Campaign
```yaml
metric: eval_accuracy
direction: {direction}
script: train.py
seed: {seed}
params:
{params}
```
"""

MIXED = """\
  lr: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
  dropout: {type: float, low: 0.0, high: 0.5, step: 0.05}
  batch_size: {type: int, low: 8, high: 128, log: true}
  layers: {type: int, low: 1, high: 9, step: 2}
  warmup: {type: float, low: 0.001, high: 1.0, log: true, step: 0.001}
  scheduler: {choices: [linear, cosine, 3, 0.5, true]}"""


def program(params: str = MIXED, *, direction: str = "maximize", seed: int = 0):
    return parse_program(PROGRAM.format(direction=direction, seed=seed, params=params))


def row(iter: int, config: dict, status: str = "completed", metric: float | None = None):
    return experiment_row(
        iter=iter, ts="2026-01-01T00:00:00Z", status=status, config=config, timeout_s=3600,
        flavor="t4-small", metric=metric,
    )


def propose(prog, rows, count: int = 1):
    return SearchProposer().propose(program=prog, state=fold(rows), count=count)


def simulate(prog, f, n: int) -> list:
    """Run ``n`` sequential experiments of ``f`` through the proposer; the ledger rows."""
    rows: list = []
    for i in range(1, n + 1):
        [p] = propose(prog, rows)
        rows.append(row(i, p.config, metric=f(p.config)))
    return rows


def assert_in_space(prog, config: dict) -> None:
    params = prog.campaign.params
    assert set(config) == set(params)
    for name, value in config.items():
        spec = params[name]
        assert spec.contains(value), (name, value)
        if spec.kind == "int":
            assert type(value) is int
        elif spec.kind == "float":
            assert type(value) is float
        else:
            assert any(type(c) is type(value) and c == value for c in spec.choices)
        if spec.step and not spec.log:
            k = (value - spec.low) / spec.step
            assert abs(k - round(k)) < 1e-9, (name, value)


def toy_metric(config: dict) -> float:
    return 0.9 - 0.05 * (math.log10(config["lr"]) + 3) ** 2 - config["dropout"] / 5


@functools.cache
def _toy_campaign() -> tuple:
    return tuple(simulate(program(), toy_metric, 10))


def toy_rows(n: int) -> list:
    """The first ``n`` rows of a toy campaign over the mixed space (shared: rows are not mutated)."""
    return list(_toy_campaign()[:n])


def test_proposals_are_in_the_space_and_typed_through_design_and_model():
    prog = program()
    rows = toy_rows(10)  # past the initial design, into the model
    proposals = propose(prog, rows, count=3)
    assert len(proposals) == 3
    for config in [r.config for r in rows] + [p.config for p in proposals]:
        assert_in_space(prog, config)
    for p in proposals:
        assert p.proposer == "search" and p.flavor is None and p.timeout_s is None
        assert p.hypothesis.endswith(".") and "\n" not in p.hypothesis
        assert p.reason


def test_hypotheses_say_what_search_is_doing():
    prog = program()
    rows = toy_rows(10)
    first = propose(prog, [])[0]
    assert first.hypothesis.startswith("Initial design point 1 of ")
    later = propose(prog, rows)[0]
    assert later.hypothesis.startswith("GP: ") and "eval_accuracy=" in later.hypothesis


def test_same_ledger_same_proposal():
    prog = program()
    for n in (0, 2, 10):
        rows = toy_rows(n)
        assert propose(prog, rows, count=2) == propose(prog, rows, count=2)


def test_a_different_ledger_moves_the_proposal_on():
    prog = program()
    rows = toy_rows(10)
    seen = {config_key(r.config) for r in rows}
    assert len(seen) == 10
    shifted = rows[:-1] + [rows[-1].model_copy(update={"metric": 0.0})]
    assert propose(prog, rows)[0].config != propose(prog, shifted)[0].config


def test_the_campaign_seed_changes_the_design():
    assert propose(program(seed=0), [])[0].config != propose(program(seed=1), [])[0].config


SMALL = """\
  depth: {type: int, low: 1, high: 3}
  act: {choices: [relu, gelu]}"""


def test_never_repeats_a_tried_failed_or_in_flight_config():
    prog = program(SMALL)
    rows = [
        row(1, {"depth": 1, "act": "relu"}, metric=0.5),
        row(2, {"depth": 2, "act": "relu"}, status="error"),
        row(3, {"depth": 3, "act": "relu"}, status="running"),
        row(4, {"depth": 1, "act": "gelu"}, status="submitted"),
        row(5, {"depth": 2.0, "act": "gelu", "epochs": 3}, metric=0.7),  # same as depth 2, fixed arg logged
    ]
    proposals = propose(prog, rows, count=6)
    assert [p.config for p in proposals] == [{"depth": 3, "act": "gelu"}]
    assert propose(prog, rows + [row(6, {"depth": 3, "act": "gelu"}, status="proposed")]) == []


def test_never_repeats_in_the_model_phase_of_a_small_space():
    prog = program(SMALL)
    rows: list = []
    for i in range(1, 7):
        [p] = propose(prog, rows)
        rows.append(row(i, p.config, metric=p.config["depth"] / 10))
    assert len({config_key(r.config) for r in rows}) == 6  # the whole space, each config once
    assert propose(prog, rows, count=2) == []


def test_an_exhausted_categorical_space_returns_fewer():
    prog = program("  opt: {choices: [sgd, adam, adamw]}")
    rows = [row(1, {"opt": "sgd"}, metric=0.1), row(2, {"opt": "adam"}, status="error")]
    assert [p.config for p in propose(prog, rows, count=3)] == [{"opt": "adamw"}]
    assert propose(prog, rows + [row(3, {"opt": "adamw"}, metric=0.2)], count=3) == []


def test_count_above_one_gives_distinct_configs():
    prog = program()
    for n in (0, 3, 10):
        proposals = propose(prog, toy_rows(n), count=5)
        assert len(proposals) == 5
        assert len({config_key(p.config) for p in proposals}) == 5


def test_error_rows_are_told_as_failures_and_in_flight_rows_as_running():
    from optuna.trial import TrialState

    prog = program(SMALL)
    rows = [
        row(1, {"depth": 1, "act": "relu"}, metric=0.5),
        row(2, {"depth": 2, "act": "relu"}, status="error"),
        row(3, {"depth": 3, "act": "relu"}, status="running"),
        row(4, {"depth": 3, "act": "gelu"}, status="completed", metric=None),
        row(5, {"depth": 1, "act": "gelu"}, status="canceled"),
    ]
    trials, skipped = ledger_trials(prog, fold(rows))
    assert skipped == 0
    assert [t.state for t in trials] == [
        TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING, TrialState.FAIL, TrialState.FAIL,
    ]
    assert [t.user_attrs["iter"] for t in trials] == [1, 2, 3, 4, 5]
    assert "1 finished experiments, 3 failed (told as failures) and 1 in flight" in propose(prog, rows)[0].reason


def test_failures_do_not_count_as_results():
    prog = program("  x: {type: float, low: 0, high: 1}")
    good = [row(i, {"x": x}, metric=x) for i, x in enumerate((0.1, 0.3, 0.5, 0.7), start=1)]
    failed = good + [row(5, {"x": 0.95}, status="error")]
    # The model still aims at high x: a failure is not a low metric, and the best is iter 4.
    proposal = propose(prog, failed)[0]
    assert "iter 4, eval_accuracy=0.7" in proposal.hypothesis
    assert proposal.config["x"] > 0.5


def test_old_rows_outside_an_edited_space_do_not_crash():
    prog = program()
    base = {"lr": 1e-3, "dropout": 0.1, "batch_size": 32, "layers": 3, "warmup": 0.01, "scheduler": "cosine"}
    rows = [
        row(1, {**base, "lr": 0.5}, metric=0.8),  # above the new high
        row(2, {k: v for k, v in base.items() if k != "layers"}, metric=0.7),  # param added later
        row(3, {**base, "old_param": 1}, metric=0.6),  # param removed since: ignored
        row(4, {**base, "scheduler": "step"}, metric=0.6),  # choice removed
        row(5, {**base, "batch_size": 12.5}, status="error"),  # not an int
        row(6, {**base, "dropout": 0.12}, metric=0.5),  # off the step grid
        row(7, {**base, "scheduler": "true"}, metric=0.4),  # a string, not the declared bool
    ]
    proposals = propose(prog, rows, count=3)
    assert len(proposals) == 3
    for p in proposals:
        assert_in_space(prog, p.config)
        assert space_key(prog.campaign.params, p.config) != space_key(prog.campaign.params, rows[2].config)
    assert "outside the current search space" in proposals[0].reason
    trials, skipped = ledger_trials(prog, fold(rows))
    assert len(trials) == 1 and skipped == 6  # only iter 3 still fits (its extra key is ignored)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_it_finds_the_good_region_of_a_1d_function(direction):
    prog = program("  x: {type: float, low: -3, high: 3}", direction=direction)
    sign = 1 if direction == "maximize" else -1

    def f(config):  # a broad bump, a narrow wrong peak at -2, and deterministic wiggle as noise
        x = config["x"]
        value = math.exp(-((x - 1.2) ** 2)) + 0.4 * math.exp(-((x + 2) ** 2) / 0.1) + 0.01 * math.sin(37 * x)
        return sign * value

    rows = simulate(prog, f, 15)
    best = (max if direction == "maximize" else min)(rows, key=lambda r: r.metric)
    assert abs(best.config["x"] - 1.2) < 0.15
    near = sum(abs(r.config["x"] - 1.2) < 0.5 for r in rows[5:])
    assert near >= 5  # the model spends most of its budget near the optimum


def test_optuna_logging_is_restored():
    import optuna

    optuna.logging.set_verbosity(logging.INFO)
    try:
        propose(program(), [])
        assert optuna.logging.get_verbosity() == logging.INFO
    finally:
        optuna.logging.set_verbosity(logging.WARNING)


def test_make_proposer(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert isinstance(make_proposer("search"), SearchProposer)
    assert make_proposer("search").name == "search"
    assert isinstance(make_proposer("auto"), SearchProposer)
    with pytest.raises(ValueError, match="unknown proposer"):
        make_proposer("grid")
    if importlib.util.find_spec("mlr_action.proposers.claude") is None:
        with pytest.raises(ValueError, match="Claude proposer is not available yet"):
            make_proposer("claude")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
        with pytest.raises(ValueError, match="Claude proposer is not available yet"):
            make_proposer("auto")


def test_importing_the_proposers_does_not_import_optuna():
    code = "import sys, mlr_action.proposers, mlr_action.proposers.search; print('optuna' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


LOOKALIKES = """\
  flag: {choices: [1, true, 1.0, "1"]}
  n: {type: int, low: 1, high: 10, step: 4}
  frac: {type: float, low: 0.0, high: 1.0, step: 0.3}"""


def test_look_alike_choices_keep_their_type_and_odd_steps_stay_on_grid():
    import warnings

    prog = program(LOOKALIKES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # optuna must not warn about the space on every step
        rows = simulate(prog, lambda c: float(c["flag"] is True) + c["n"] / 10 - c["frac"], 8)
        proposals = propose(prog, rows, count=3)
    assert len({type(r.config["flag"]) for r in rows}) >= 3  # the design spreads over the look-alikes
    for config in [r.config for r in rows] + [p.config for p in proposals]:
        assert_in_space(prog, config)
        assert config["n"] in (1, 5, 9) and config["frac"] in (0.0, 0.3, 0.6, 0.9)
    # ``true`` tried does not count as ``1`` tried: they are different configs
    tried = [row(1, {"flag": True, "n": 1, "frac": 0.0}, metric=0.1)]
    exhaust = [row(i + 2, {"flag": f, "n": n, "frac": x}, metric=0.1)
               for i, (f, n, x) in enumerate((f, n, x) for f in (True, 1.0, "1") for n in (1, 5, 9) for x in (0.0, 0.3, 0.6, 0.9))]
    left = propose(prog, tried + exhaust[1:], count=20)
    assert {type(p.config["flag"]) for p in left} == {int}
    assert len(left) == 12


def test_accepts_the_validator_hook():
    proposals = SearchProposer().propose(program=program(), state=fold([]), count=1, check=lambda p: [])
    assert len(proposals) == 1


def test_the_model_is_fit_on_a_bounded_subset_that_keeps_the_best_and_the_latest():
    from mlr_action.proposers.gp import model_subset
    from mlr_action.proposers.pick import MAX_MODEL_POINTS

    complete = [({"x": i}, float((i * 37) % 101)) for i in range(1000)]
    subset = model_subset(complete, True, MAX_MODEL_POINTS)
    assert len(subset) <= MAX_MODEL_POINTS
    assert max(v for _, v in subset) == max(v for _, v in complete)
    assert subset[-1] == complete[-1] and subset == sorted(subset, key=lambda cv: cv[0]["x"])
    assert model_subset(complete[:50], False, MAX_MODEL_POINTS) == complete[:50]
    assert min(v for _, v in model_subset(complete, False, MAX_MODEL_POINTS)) == min(v for _, v in complete)


# --- mixed spaces, failures, noise (issue 14) ---------------------------------------------


def test_failed_jobs_steer_the_search_away_from_where_they_failed():
    """A divergence cliff at x > 0.6 next to the optimum at 0.5: after the first failure, few more."""
    prog = program("  x: {type: float, low: 0, high: 1}\n  y: {type: float, low: 0, high: 1}")
    rows: list = []
    for i in range(1, 21):
        [p] = propose(prog, rows)
        x, y = p.config["x"], p.config["y"]
        if x > 0.6:  # diverged: the job exits without a metric
            rows.append(row(i, p.config, status="error"))
        else:
            rows.append(row(i, p.config, metric=1.0 - (x - 0.5) ** 2 - (y - 0.5) ** 2))
    failed = [r.status == "error" for r in rows]
    after = failed[failed.index(True) + 1:]
    assert sum(after) <= len(after) / 5, [round(r.config["x"], 2) for r in rows]
    best = max((r for r in rows if r.metric is not None), key=lambda r: r.metric)
    assert abs(best.config["x"] - 0.5) < 0.1 and abs(best.config["y"] - 0.5) < 0.15


def test_the_failure_model_counts_errors_and_missing_metrics_but_not_cancels():
    from mlr_action.proposers.study import is_failure

    prog = program(SMALL)
    rows = [
        row(1, {"depth": 1, "act": "relu"}, metric=0.5),
        row(2, {"depth": 2, "act": "relu"}, status="error"),
        row(3, {"depth": 3, "act": "gelu"}, status="completed", metric=None),
        row(4, {"depth": 1, "act": "gelu"}, status="canceled"),
    ]
    trials, _ = ledger_trials(prog, fold(rows))
    assert [is_failure(t) for t in trials] == [False, True, True, False]


def test_a_lucky_single_result_is_not_chased():
    """One high value among low neighbours reads as noise: the model goes where the trend is, not to the outlier."""
    prog = program("  x: {type: float, low: 0, high: 1}")
    trend = [(0.05, 0.05), (0.12, 0.13), (0.18, 0.17), (0.24, 0.25), (0.3, 0.29), (0.45, 0.46), (0.55, 0.54),
             (0.62, 0.63)]
    rows = [row(i, {"x": x}, metric=v) for i, (x, v) in enumerate(trend, start=1)]
    rows.append(row(len(rows) + 1, {"x": 0.15}, metric=0.7))  # a lucky draw: its neighbours say ~0.15
    [p] = propose(prog, rows)
    assert p.config["x"] > 0.62


def test_an_irrelevant_param_gets_a_long_length_scale():
    import numpy as np

    from mlr_action.proposers.gp import GaussianProcess, warp_targets

    gen = np.random.default_rng(0)
    x = gen.random((16, 3))  # columns: relevant, irrelevant, relevant
    y = np.sin(6 * x[:, 0]) + (x[:, 2] - 0.5) ** 2 * 4
    gp = GaussianProcess(x, warp_targets(y), [[0], [1], [2]])
    assert gp.lengths[1] > 2 * max(gp.lengths[0], gp.lengths[2])


def test_a_category_that_matters_gets_a_short_length_scale_and_one_that_does_not_a_long_one():
    import numpy as np

    from mlr_action.proposers.gp import GaussianProcess, warp_targets

    gen = np.random.default_rng(1)
    lr, opt, junk = gen.random(18), gen.integers(0, 3, 18), gen.integers(0, 2, 18)
    best = np.array([0.2, 0.5, 0.8])[opt]  # each optimizer wants its own step size
    x = np.column_stack([lr, np.eye(3)[opt], np.eye(2)[junk]])
    gp = GaussianProcess(x, warp_targets((lr - best) ** 2), [[0], [1, 2, 3], [4, 5]])
    assert gp.lengths[1] < gp.lengths[2]


@pytest.mark.parametrize("metric", [1e300, -1e300, 1e-300, 5e15])
def test_an_extreme_metric_in_the_ledger_neither_crashes_nor_leaves_the_space(metric):
    prog = program()
    rows = toy_rows(8)
    rows[3] = rows[3].model_copy(update={"metric": metric})
    proposals = propose(prog, rows, count=2)
    assert len(proposals) == 2
    for p in proposals:
        assert_in_space(prog, p.config)
    assert propose(prog, rows, count=2) == proposals  # and it stays deterministic


def test_a_proposal_the_check_refuses_is_replaced():
    prog = program()
    refused: list = []

    def check(proposal):
        if proposal.config["scheduler"] in ("linear", "cosine"):
            refused.append(proposal.config)
            return [f"scheduler={proposal.config['scheduler']} is refused here"]
        return []

    for n in (0, 10):
        proposals = SearchProposer().propose(program=prog, state=fold(toy_rows(n)), count=4, check=check)
        assert len(proposals) == 4 and not any(check(p) for p in proposals)
    assert refused  # it was asked, and it moved on
    always = SearchProposer().propose(program=prog, state=fold(toy_rows(10)), count=2, check=lambda p: ["over budget"])
    assert len(always) == 2  # refused whatever it proposes: it still answers, and the step says why
