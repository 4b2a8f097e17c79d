"""Budget accounting: distinct job ids, actual durations when finished, full timeouts in flight."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mlr_action.core.budget import RESERVE, budget_problems, usage, worst_case
from mlr_action.core.ledger import experiment_row
from mlr_action.core.program import parse_program
from mlr_action.core.state import fold
from programs import ENVELOPE, program_text, with_

TS = "2026-01-01T00:00:00+00:00"


def row(iter, status, job_id, *, timeout_s=3600, duration_s=None, flavor="t4-small", cost_usd=None):
    return experiment_row(iter=iter, ts=TS, status=status, config={"i": iter}, timeout_s=timeout_s, flavor=flavor,
                          job_id=job_id, duration_s=duration_s, cost_usd=cost_usd)


def test_distinct_job_ids_are_counted_once():
    rows = [row(1, "submitted", "a"), row(1, "running", "a"), row(1, "completed", "a", duration_s=600)]
    used = usage(fold(rows))
    assert used.jobs == 1 and used.walltime_s == 600


def test_in_flight_jobs_are_charged_their_full_timeout_or_more():
    used = usage(fold([row(1, "running", "a", duration_s=100), row(2, "running", "b", duration_s=4000)]))
    assert used.walltime_s == 3600 + 4000


def test_finished_without_duration_is_charged_its_timeout():
    assert usage(fold([row(1, "error", "a")])).walltime_s == 3600


def test_intent_without_job_id_is_charged_as_in_flight():
    used = usage(fold([row(1, "proposed", None)]))
    assert used.jobs == 1 and used.walltime_s == 3600


def test_error_row_that_never_got_a_job_costs_nothing():
    assert usage(fold([row(1, "error", None)])).jobs == 0


def test_dollars_use_live_prices_then_recorded_cost():
    rows = [row(1, "running", "a", flavor="a10g-large"), row(2, "completed", "b", duration_s=1800, cost_usd=0.1)]
    used = usage(fold(rows), prices={"a10g-large": 2.0})
    assert round(used.cost_usd, 6) == 2.0 + 0.1


def test_budget_problems_name_each_limit():
    program = parse_program(program_text(with_(ENVELOPE, max_jobs=2, max_walltime="2h", max_cost_usd=1.0)))
    used = usage(fold([row(1, "completed", "a", duration_s=3600), row(2, "completed", "b", duration_s=2000)]))
    problems = budget_problems(program.envelope, used, flavor="a10g-large", timeout_s=3600)
    text = " ".join(problems)
    assert "max_jobs=2 reached" in text and "walltime" in text and "max_cost_usd" in text


def test_reserve_keeps_ten_percent_of_walltime_back():
    program = parse_program(program_text(with_(ENVELOPE, max_walltime="10h", max_timeout="1h")))
    rows = [row(i, "completed", f"j{i}", duration_s=3600) for i in range(1, 9)] + [row(9, "completed", "j9", duration_s=1800)]
    used = usage(fold(rows))  # 8h30m used; 90% of 10h is 9h
    assert budget_problems(program.envelope, used, flavor="t4-small", timeout_s=3600)
    assert not budget_problems(program.envelope, used, flavor="t4-small", timeout_s=1800)
    assert not budget_problems(program.envelope, used, flavor="t4-small", timeout_s=3600, reserve=0)


def test_worst_case_is_capped_by_walltime_and_cost():
    program = parse_program(program_text())
    walltime, dollars = worst_case(program.envelope)
    assert walltime == 8 * 3600  # 12 x 2h = 24h capped by 8h
    assert dollars == 8 * 1.5  # a10g-large is the priciest allowed flavor
    capped = parse_program(program_text(with_(ENVELOPE, max_cost_usd=5)))
    assert worst_case(capped.envelope)[1] == 5



def test_the_worst_case_counts_what_each_job_may_bill_while_it_starts():
    """HF bills "Starting": the worst case is what the step charges max_jobs jobs in flight, start-up included."""
    program = parse_program(program_text(with_(ENVELOPE, max_jobs=3, max_timeout="1h", max_walltime="10h",
                                               max_cost_usd=None)))
    starting = program.campaign.scheduling_timeout
    in_flight = fold([row(i, "running", f"j{i}", timeout_s=3600) for i in (1, 2, 3)])
    charged = usage(in_flight, starting_s=starting).walltime_s
    assert worst_case(program.envelope, starting_s=starting)[0] == charged == 3 * (3600 + 600)
    assert worst_case(program.envelope)[0] == 3 * 3600  # the local backend bills no start-up


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["t4-small", "a10g-large"]),
            st.integers(min_value=60, max_value=7200),  # proposed timeout
            st.floats(min_value=0.0, max_value=1.0),  # fraction of timeout actually used
            st.sampled_from(["completed", "error", "canceled", "running"]),
        ),
        max_size=40,
    ),
    st.integers(min_value=1, max_value=15),
    st.integers(min_value=1, max_value=10),
    st.one_of(st.none(), st.floats(min_value=0.5, max_value=30)),
)
def test_admitting_only_what_fits_never_exceeds_the_envelope(attempts, max_jobs, walltime_h, max_cost):
    """For any sequence of proposals and outcomes, gated by budget_problems, usage stays inside the envelope."""
    envelope = dict(ENVELOPE, max_jobs=max_jobs, max_walltime=f"{walltime_h}h", max_timeout=f"{walltime_h}h",
                    max_cost_usd=max_cost)
    program = parse_program(program_text(envelope, with_(__import__("programs").CAMPAIGN, timeout="30m")))
    rows = []
    for i, (flavor, timeout_s, used_fraction, outcome) in enumerate(attempts, start=1):
        timeout_s = min(timeout_s, program.envelope.max_timeout)
        state = fold(rows)
        if budget_problems(program.envelope, usage(state), flavor=flavor, timeout_s=timeout_s):
            continue
        rows.append(row(i, "submitted", f"j{i}", timeout_s=timeout_s, flavor=flavor))
        duration = None if outcome == "running" else used_fraction * timeout_s
        rows.append(row(i, outcome, f"j{i}", timeout_s=timeout_s, flavor=flavor, duration_s=duration))
        used = usage(fold(rows))
        assert used.jobs <= program.envelope.max_jobs
        assert used.walltime_s <= program.envelope.max_walltime * (1 - RESERVE) + 1e-6
        if max_cost is not None:
            assert used.cost_usd <= max_cost * (1 - RESERVE) + 1e-6
