"""The search proposer: Bayesian optimization for mixed spaces, over a study rebuilt from the ledger.

Guarantees:

- Stateless. Every call rebuilds an in-memory Optuna study from the ledger
  (:mod:`mlr_action.proposers.study`): each experiment, in iter order, becomes
  one trial. Completed rows with a metric are COMPLETE with that value; error
  rows and completed rows without a finite metric are failures, which the
  model uses (below); canceled rows are FAIL and only count as tried;
  in-flight rows (proposed, submitted, running) are RUNNING and the model
  treats them as if they had returned its own prediction, so parallel
  proposals spread out. Rows whose config no longer fits the space (program.md
  was edited, or a hostile row) stay out of the model but still count as
  tried; any finite metric, however extreme, is a number the model can take.
- Reproducible. The random generator's seed derives from ``campaign.seed``
  and the number of experiments, so the same ledger gives the same proposals.
- Never a duplicate. A config equal (:func:`space_key`: ``state.config_key``
  over the current params) to one tried, failed or in flight is never
  proposed: the model skips such candidates, the study is asked again a
  bounded number of times, then seeded random samples are drawn, and a small
  finite space is enumerated. When every config has been tried, fewer
  proposals (possibly none) are returned.
- Checked. A proposal the step's ``check`` refuses is replaced by the next
  best, at most ``MAX_CHECKS`` times a slot (the last is returned: the step
  refuses it and says why, as when the budget is spent).
- Typed. A config holds exactly the campaign's params: ints are ``int``,
  floats are ``float`` inside ``[low, high]`` (on the ``step`` grid when one is
  given, rounded to 4 significant digits otherwise), categoricals are the
  declared value itself. ``flavor`` and ``timeout_s`` are left to the step.
- Optuna and numpy are imported inside :meth:`SearchProposer.propose`;
  optuna's logging is at WARNING and its ExperimentalWarning silenced for the
  call only. A proposal takes 10-50 ms, with 50 finished experiments too
  (docs/BENCHMARKS.md, figure 2).

What it does, and why. Budgets are 12-24 evaluations, each a GPU job, in
spaces like real hyperparameter searches: a log-scale step size whose best
value moves with the optimizer and the batch size, log-scale integers,
choices, params that do nothing, regions where the job diverges or runs out
of memory, a few percent of noise.

1. A maximin Latin hypercube of one more point than params, 4 to 6
   (:func:`initial_design_size`; seeded by ``campaign.seed`` only, so it is
   one coherent set across steps). Log params are spread on the log scale.
2. Then a Gaussian process (:mod:`mlr_action.proposers.gp`): inputs warped to
   the unit cube (log scale for log params, ints mid-bucket, choices
   one-hot), a Matern 5/2 kernel with one length scale per param, a choice
   contributing a Hamming distance (so how much the optimizer matters is one
   learned number, and what is learned about the step size carries across
   optimizers in proportion to it), length scales, signal and noise by maximum a
   posteriori (a param that does nothing gets a long length scale and stops
   costing evaluations; noise is fitted, so a lucky result is explained as
   noise), targets warped (median-centred, the bad tail log-compressed) and
   a pessimistic prior mean (unexplored is assumed poor until the data says
   otherwise: with ~10 points this spends evaluations near good ones).
3. The next config maximizes ``log EI + log P(success)``
   (:mod:`mlr_action.proposers.pick`): expected improvement over the best
   *posterior mean* at a tried point (not the best observed value, which may
   be a lucky draw), times the probability the job succeeds from a second
   GP fitted to the failure labels of every finished experiment; candidates
   more likely than ``FAILURE_CAP`` to fail come last. Candidates are uniform
   samples plus a trust region around the three best points whose step per
   param follows its length scale, refined once.

Why not Optuna's samplers: ``TPESampler()`` and ``GPSampler()`` sample their
first 10 trials at random, so at 12 evaluations they are random search plus
two model picks, and they learn nothing from failed trials (after a first
failure they fail again 2-5 times as often as this proposer). ``GPSampler``
also needs torch and takes 10-40 times as long. Figure 2 of
docs/BENCHMARKS.md measures all three on 13 problems (5 used to design this,
8 held out), and says where this proposer falls short: at 12 evaluations on
rugged 4-6 dimensional functions, and where nine optimizer x scheduler pairs
interact (it refines the first good optimizer it finds).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from typing import Any

from mlr_action.core.proposal import Proposal, Proposer
from mlr_action.proposers.space import derive_seed, finite_values, from_unit, latin_hypercube, space_key
from mlr_action.proposers.study import MIN_MODEL, quiet, sampler_class, distributions, from_study, ledger_trials, to_study

__all__ = ["MIN_MODEL", "SearchProposer", "initial_design_size", "ledger_trials", "space_key"]

MAX_ASKS = 4  # asks of the study per proposal before falling back to random samples
MAX_RANDOM = 64  # seeded random draws after that
MAX_CHECKS = 8  # configs tried per slot when the step's check refuses them
ENUMERATE_LIMIT = 4096  # finite spaces up to this size are enumerated when all else repeats


DESIGN_MIN, DESIGN_MAX = 4, 6  # initial design: one more point than params, within these


def initial_design_size(params: dict) -> int:
    """Points of the initial design: one more than the params, between ``DESIGN_MIN`` and ``DESIGN_MAX``."""
    return max(DESIGN_MIN, min(len(params) + 1, DESIGN_MAX))


# --- One call --------------------------------------------------------------------


class _Round:
    """One ``propose`` call: the study rebuilt from the ledger, and every config already taken."""

    def __init__(self, program, state, n_initial: int):
        import optuna

        campaign = program.campaign
        self.program, self.state, self.n_initial, self.params = program, state, n_initial, campaign.params
        self.dists = distributions(self.params)
        self.taken = {space_key(self.params, e.config) for e in state.experiments.values()}
        self.seed = derive_seed(campaign.seed, len(state.experiments))
        self.sampler = sampler_class()(
            self.params, self.dists, self.seed, self._new, campaign.direction == "maximize"
        )
        self.study = optuna.create_study(direction=campaign.direction, sampler=self.sampler)
        trials, self.skipped = ledger_trials(program, state)
        self.study.add_trials(trials)

    def _new(self, config: dict[str, Any]) -> bool:
        return space_key(self.params, config) not in self.taken

    def _take(self, config: dict[str, Any], *, asked: bool = False) -> dict[str, Any]:
        import optuna

        self.taken.add(space_key(self.params, config))
        if not asked:  # in flight for the rest of this call, so the model avoids it
            with contextlib.suppress(ValueError):
                self.study.add_trial(
                    optuna.trial.create_trial(
                        state=optuna.trial.TrialState.RUNNING,
                        params=to_study(self.params, config),
                        distributions=self.dists,
                    )
                )
        return config

    def _from_design(self, index: int) -> dict[str, Any] | None:
        if index >= self.n_initial:
            return None
        design = latin_hypercube(self.params, self.n_initial, derive_seed(self.program.campaign.seed, -1))
        return self._take(design[index]) if self._new(design[index]) else None

    def _from_study(self) -> dict[str, Any] | None:
        from optuna.trial import TrialState

        for _ in range(MAX_ASKS):
            trial = self.study.ask(self.dists)
            config = from_study(self.params, trial.params)
            if self._new(config):
                return self._take(config, asked=True)
            self.study.tell(trial, state=TrialState.FAIL)  # a repeat carries no information
        return None

    def _from_random(self, slot: int) -> dict[str, Any] | None:
        rng = random.Random(derive_seed(self.seed, slot, 1))
        for _ in range(MAX_RANDOM):
            if self._new(config := {n: from_unit(s, rng.random()) for n, s in self.params.items()}):
                return self._take(config)
        values = [finite_values(s) for s in self.params.values()]
        if any(v is None for v in values) or math.prod(map(len, values)) > ENUMERATE_LIMIT:
            return None
        left = [c for c in (dict(zip(self.params, combo)) for combo in itertools.product(*values)) if self._new(c)]
        return self._take(rng.choice(left)) if left else None

    def propose(self, count: int, check=None) -> list[Proposal]:
        """Up to ``count`` proposals; one that ``check`` refuses is replaced, at most ``MAX_CHECKS`` times a slot."""
        out: list[Proposal] = []
        for slot in range(count):
            for _attempt in range(MAX_CHECKS):  # refused every time (the budget, say): the last goes, the step says why
                proposal = self._next(slot, len(out))
                if proposal is None or check is None or not check(proposal):
                    break
            if proposal is None:
                break  # every config of this space has been tried or is in flight
            out.append(proposal)
        return out

    def _next(self, slot: int, made: int) -> Proposal | None:
        index = len(self.state.experiments) + made
        if (config := self._from_design(index)) is not None:
            why = f"Initial design point {index + 1} of {self.n_initial}: spread the search space."
        elif (config := self._from_study()) is not None:
            why = self._hypothesis(self.sampler.note)
        elif (config := self._from_random(slot)) is not None:
            why = "Random sample: the model found no untried config."
        else:
            return None
        return Proposal(config=config, hypothesis=why, reason=self._reason(), proposer="search")

    def _ledger_trials(self, *states) -> list[Any]:
        trials = self.study.get_trials(deepcopy=False)
        return [t for t in trials if "iter" in t.user_attrs and t.state in states]

    def _hypothesis(self, note: str) -> str:
        from optuna.trial import TrialState

        complete = self._ledger_trials(TrialState.COMPLETE)
        if note == "spread" or not complete:
            return f"Space-filling sample: {len(complete)} finished experiments are too few to fit the model yet."
        if note == "unfit":
            return "Space-filling sample: the model could not be fitted to these results."
        if note == "random":
            return "Random sample: the model found no untried config."
        pick = max if self.program.campaign.direction == "maximize" else min
        best = pick(complete, key=lambda t: t.value)
        so_far = f"the best so far (iter {best.user_attrs['iter']}, {self.program.campaign.metric}={best.value:g})"
        if note == "exploit":
            return f"GP: predicted to beat {so_far}."
        return f"GP: explore an uncertain region that could beat {so_far}."

    def _reason(self) -> str:
        from optuna.trial import TrialState

        done, failed, running = (
            len(self._ledger_trials(s)) for s in (TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING)
        )
        text = (
            f"Informed by {done} finished experiments, {failed} failed (told as failures) "
            f"and {running} in flight (avoided)."
        )
        if self.skipped:
            text += f" {self.skipped} experiments outside the current search space were left out of the model."
        return text


class SearchProposer(Proposer):
    """A Latin hypercube, then a Gaussian process, over a study rebuilt from the ledger on every call."""

    name = "search"

    def __init__(self, *, n_initial: int | None = None):
        self.n_initial = n_initial  # None: initial_design_size of the space

    def propose(self, *, program, state, count: int, check=None, used=None, prices=None) -> list[Proposal]:
        """Untried configs; the budget (``check``, ``used``, ``prices``) is left to the step's admit."""
        if count <= 0:
            return []
        if not program.campaign.params:  # `params: {}` has one config, the script as it is: a baseline, run once
            return [] if state.experiments else [Proposal(
                config={}, hypothesis="Baseline: the script with its own defaults (the search space is empty).",
                reason="params is empty: one run, then the search space is used up.", proposer="search")]
        import optuna

        with quiet(optuna):
            n_initial = self.n_initial or initial_design_size(program.campaign.params)
            return _Round(program, state, n_initial).propose(count, check)
