"""The cost gate on plain numbers: when a surrogate can pay off, and when it cannot."""

import pytest

from surrogate_hmc.core.costs import (
    MIN_SPEEDUP_PER_DRAW,
    SURROGATE_CALL_SECONDS,
    SURROGATE_SETUP_SECONDS,
    CostLedger,
    judge_cost,
)


def test_a_cheap_model_does_not_pay():
    """PyMC's NUTS on a small regression: 0.3 ms an iteration, 10 us a logp."""
    verdict = judge_cost(exact_iteration=3e-4, logp=1e-5, remaining=1950)
    assert not verdict.pays
    assert verdict.surrogate_iteration == pytest.approx(1e-5 + SURROGATE_CALL_SECONDS)
    assert verdict.speedup == pytest.approx(3e-4 / 1.01e-3)
    assert verdict.saving < 0


def test_an_expensive_model_pays():
    verdict = judge_cost(exact_iteration=0.05, logp=0.002, remaining=1950)
    assert verdict.pays
    assert verdict.speedup == pytest.approx(0.05 / 0.003)
    assert verdict.saving == pytest.approx(1950 * 0.047)
    assert verdict.remaining == 1950


def test_the_speedup_per_draw_must_reach_its_threshold_however_long_the_run():
    logp = 1e-3  # a surrogate iteration: 2 ms
    at = judge_cost(exact_iteration=MIN_SPEEDUP_PER_DRAW * 2e-3, logp=logp, remaining=10**8)
    below = judge_cost(exact_iteration=0.99 * MIN_SPEEDUP_PER_DRAW * 2e-3, logp=logp,
                       remaining=10**8)  # fmt: skip
    assert at.speedup == pytest.approx(MIN_SPEEDUP_PER_DRAW) and at.pays
    assert below.saving > 1e3 * SURROGATE_SETUP_SECONDS and not below.pays


def test_the_saving_must_exceed_the_setup():
    """20 times faster per draw, but too few iterations left to pay for the training."""
    per_iteration = 0.04 - 0.002  # seconds saved by each surrogate iteration
    just_short = int(SURROGATE_SETUP_SECONDS / per_iteration)
    short = judge_cost(exact_iteration=0.04, logp=1e-3, remaining=just_short)
    long = judge_cost(exact_iteration=0.04, logp=1e-3, remaining=just_short + 2)
    assert short.speedup == pytest.approx(20.0)
    assert short.saving <= SURROGATE_SETUP_SECONDS < long.saving
    assert not short.pays and long.pays


def test_an_expensive_logp_makes_the_surrogate_iteration_expensive_too():
    """Each surrogate draw still costs one exact logp: a model whose logp is most of an
    exact iteration (a short tree) gains little."""
    verdict = judge_cost(exact_iteration=0.03, logp=0.02, remaining=10**6)
    assert verdict.speedup == pytest.approx(0.03 / 0.021)
    assert not verdict.pays


@pytest.mark.parametrize("exact_iteration", [3e-4, 1.5e-3, 0.05])
def test_an_unmeasured_logp_counts_as_free_so_its_no_is_final(exact_iteration):
    """Without a logp the verdict is the most favourable: if it says no, so would any logp."""
    free = judge_cost(exact_iteration=exact_iteration, logp=None, remaining=1950)
    assert not free.logp_measured and free.surrogate_iteration == SURROGATE_CALL_SECONDS
    for logp in (0.0, 1e-5, 1e-3):
        measured = judge_cost(exact_iteration=exact_iteration, logp=logp, remaining=1950)
        assert measured.logp_measured
        assert measured.pays <= free.pays
    assert free.pays == (exact_iteration == 0.05)


def test_the_ledger_times_each_phase_by_its_recent_median():
    ledger = CostLedger()
    for seconds in (0.01, 0.02, 10.0):  # one slow outlier (a training) does not count
        ledger.end_iteration(phase_code=0, seconds=seconds)
    ledger.end_iteration(phase_code=1, seconds=0.004)
    assert ledger.median_iteration_seconds(0) == pytest.approx(0.02)
    assert ledger.speedup_per_iteration() == pytest.approx(5.0)
    ledger.add_grad(0.003)
    ledger.add_grad(0.001)
    assert ledger.milliseconds_per_grad() == pytest.approx(2.0)
    assert CostLedger().milliseconds_per_logp() == 0.0
