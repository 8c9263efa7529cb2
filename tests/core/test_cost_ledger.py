"""The cost gate on plain numbers: when a surrogate can pay off, and when it cannot."""

import pytest

from surrogate_hmc.core.cost_ledger import (
    MAX_FAILURE_SHARE,
    MIN_SPEEDUP_PER_DRAW,
    SURROGATE_CALL_SECONDS,
    SURROGATE_SETUP_SECONDS,
    CostLedger,
    fit_quality,
    judge_cost,
    keep_books,
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
    run = {"exact_iteration": 0.04, "logp": 1e-3, "run_iterations": 2000}
    short = judge_cost(remaining=just_short, **run)
    long = judge_cost(remaining=just_short + 2, **run)
    assert short.speedup == pytest.approx(20.0)
    assert short.saving <= SURROGATE_SETUP_SECONDS < long.saving
    assert not short.pays and long.pays


def test_a_run_too_short_to_risk_a_failed_training_stays_nuts():
    """Saving is possible, but a failed first training would cost more than a quarter of the
    plain NUTS run: failures may cost at most that, the first one included."""
    plain_run = SURROGATE_SETUP_SECONDS / MAX_FAILURE_SHARE  # seconds of a plain NUTS run
    iterations = 400
    exact_iteration = plain_run / iterations
    below = judge_cost(
        exact_iteration=0.99 * exact_iteration, logp=1e-4, remaining=iterations,
        run_iterations=iterations,
    )  # fmt: skip
    above = judge_cost(
        exact_iteration=1.01 * exact_iteration, logp=1e-4, remaining=iterations,
        run_iterations=iterations,
    )  # fmt: skip
    assert below.speedup > 10 and below.saving > SURROGATE_SETUP_SECONDS
    assert below.setup_at_risk and not below.pays
    assert not above.setup_at_risk and above.pays


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


# -- the books on failed trainings ----------------------------------------------------------


def test_a_fit_far_above_the_threshold_leaves_little_to_hope_for():
    assert fit_quality(0.7, 0.5) == pytest.approx(0.5 / 0.7)
    assert fit_quality(5.0, 0.5) == pytest.approx(0.1)
    assert fit_quality(0.4, 0.5) == 1.0, "passed: its pilot failed, the fit was close"
    assert fit_quality(None, 0.5) == 1.0, "nothing was trained: nothing learned either"
    assert fit_quality(float("nan"), 0.5) == 0.0 and fit_quality(float("inf"), 0.5) == 0.0
    assert fit_quality(3.0, float("inf")) == 1.0


def test_the_books_weigh_failures_against_what_is_left_to_win():
    """GP-like costs: 20 ms an exact iteration, 3 ms a surrogate one, 1000 iterations left."""
    verdict = judge_cost(exact_iteration=0.02, logp=0.002, remaining=1000, run_iterations=2000)
    assert verdict.plain_run_seconds == pytest.approx(40.0)
    books = keep_books(verdict, spent=2.0, attempt=2.0, quality=0.5, wait=100)
    assert books.iterations == 900 and books.saving == pytest.approx(0.017)
    assert books.winnable == pytest.approx(0.5 * 900 * 0.017)  # 7.65 s
    assert books.cap == pytest.approx(MAX_FAILURE_SHARE * 40.0)
    assert books.worth_another
    # the same failures with a fit twice as far off: 3.8 s to win against 4 s
    assert not keep_books(verdict, spent=2.0, attempt=2.0, quality=0.25, wait=100).worth_another
    # nothing left after the wait
    assert keep_books(verdict, spent=0.0, attempt=0.1, quality=1.0, wait=1000).winnable == 0.0


def test_the_cap_holds_however_much_is_left_to_win():
    """10 ms an exact iteration, 2000 in the run: 6 s of failures would be won back (17 s to
    win), but a failed attempt would then make the run cost more than 1.25 times plain NUTS."""
    verdict = judge_cost(exact_iteration=0.01, logp=1e-4, remaining=1900, run_iterations=2000)
    assert verdict.plain_run_seconds == pytest.approx(20.0)
    books = keep_books(verdict, spent=3.0, attempt=3.0, quality=1.0, wait=0)
    assert books.winnable == pytest.approx(1900 * 0.0089) and books.cap == pytest.approx(5.0)
    assert not books.worth_another
    assert keep_books(verdict, spent=2.0, attempt=2.0, quality=1.0, wait=0).worth_another


def test_a_cheaper_surrogate_iteration_than_exact_is_needed_to_win_anything():
    verdict = judge_cost(exact_iteration=0.002, logp=0.003, remaining=1000)
    books = keep_books(verdict, spent=0.0, attempt=0.01, quality=1.0, wait=0)
    assert books.saving < 0 and books.winnable == 0.0 and not books.worth_another
