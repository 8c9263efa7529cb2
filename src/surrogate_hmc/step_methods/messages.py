"""The warnings a sampler gives, and their words."""

import numpy as np

from surrogate_hmc.core.cost_ledger import (
    MAX_FAILURE_SHARE,
    MIN_SPEEDUP_PER_DRAW,
    SURROGATE_CALL_SECONDS,
    SURROGATE_SETUP_SECONDS,
    CostLedger,
    CostVerdict,
    FailureBooks,
)
from surrogate_hmc.core.lifecycle import TrainingRecord

__all__ = [
    "MIN_SPEEDUP_PER_DRAW",
    "SurrogateCostWarning",
    "SurrogateWarning",
    "cannot_pay",
    "gave_up",
    "given_failed_pilot",
    "never_switched",
    "not_saved",
    "too_cheap",
    "too_short",
]


class SurrogateWarning(UserWarning):
    """The surrogate could not be used; the chain stays on exact NUTS, which is still correct."""


class SurrogateCostWarning(UserWarning):
    """The surrogate works but the exact model is too cheap for it to pay off."""


TIMING = (
    "This decision rests on times measured on this machine, so the same random_seed can take "
    "the other path (and give other draws) on a faster, slower or busier one; the trace's "
    "cost_gate stat records it (shmc.decisions(idata)). cost_gate=False makes the draws depend "
    "on the seed alone."
)


def too_short(tune: int, schedule) -> str:
    """No training fits in this run's tuning."""
    return (
        f"tune={tune} is too short for {schedule} to train a surrogate (the default schedule "
        "needs tune >= 300); sampling with exact NUTS. Use more tuning iterations or an "
        "earlier shmc.Schedule(start=..., stop=...)."
    )


def never_switched(records: tuple[TrainingRecord, ...], max_validation_error: float) -> str:
    """Tuning ended without a surrogate the switch test trusted."""
    errors = [r.validation_error for r in records if r.validation_error is not None]
    detail = (
        f"best held-out error {min(errors):.3g} (needed <= {max_validation_error:g})"
        if errors
        else "too few finite exact evaluations to train on"
    )
    pilots = [r.pilot for r in records if r.pilot is not None]
    ran = [p.acceptance for p in pilots if p.explored]
    if ran:
        detail += f", best pilot acceptance {max(ran):.2f}"
    if pilots and not pilots[-1].explored:
        detail += f"; the last pilot failed because {pilots[-1].reason}"
    return (
        f"The surrogate never passed the switch test after {len(records)} training(s) "
        f"({detail}); the draws come from exact NUTS. Try more tuning iterations, a larger "
        "network, or a looser shmc.SwitchTest."
    )


def given_failed_pilot(record: TrainingRecord) -> str:
    """The surrogate given by the user did not pass its pilot."""
    assert record.pilot is not None
    return (
        f"The given surrogate failed its pilot ({record.pilot.reason}); training a new one "
        "from this run's exact "
        "evaluations."
    )


def too_cheap(ledger: CostLedger, records: tuple[TrainingRecord, ...]) -> str | None:
    """Why a surrogate draw is not clearly cheaper than an exact NUTS iteration (``None``: it is).

    Judged on the recent tuning iterations of both phases; ``None`` too until both were seen.
    """
    speedup = ledger.speedup_per_iteration()
    if not np.isfinite(speedup) or speedup >= MIN_SPEEDUP_PER_DRAW:
        return None
    exact, surrogate = ledger.median_iteration_seconds(0), ledger.median_iteration_seconds(1)
    training = sum(record.seconds for record in records)
    return (
        f"This model is too cheap for a surrogate to pay off: an exact NUTS iteration took "
        f"{1e3 * exact:.2f} ms (logp and gradient {ledger.milliseconds_per_grad():.3f} ms per "
        f"evaluation) and a surrogate iteration {1e3 * surrogate:.2f} ms (exact logp "
        f"{ledger.milliseconds_per_logp():.3f} ms), a speed-up of {exact / surrogate:.1f}x per "
        f"draw, after {training:.1f} s of training. Plain pm.sample() is likely faster here; "
        "sampling continues with the surrogate, which stays exact."
    )


def cannot_pay(verdict: CostVerdict, ledger: CostLedger) -> str:
    """The cost gate decided that a surrogate cannot pay off in this run."""
    takes = "takes" if verdict.settled else "takes at least"
    if verdict.logp_measured:
        surrogate = (
            f"a surrogate iteration would take about {1e3 * verdict.surrogate_iteration:.2f} ms "
            f"(one exact logp, {1e3 * (verdict.surrogate_iteration - SURROGATE_CALL_SECONDS):.3f}"
            " ms, and one compiled NUTS call)"
        )
    else:
        surrogate = (
            f"a surrogate iteration would take at least {1e3 * SURROGATE_CALL_SECONDS:.2f} ms "
            "(one compiled NUTS call, even if its exact logp cost nothing)"
        )
    if verdict.setup_at_risk and verdict.speedup >= MIN_SPEEDUP_PER_DRAW:
        return (
            f"This run is too short to risk a surrogate, so this chain continues as plain NUTS: "
            f"a surrogate iteration would be {verdict.speedup:.1f}x faster, but a training that "
            f"failed (about {SURROGATE_SETUP_SECONDS:g} s) would cost more than "
            f"{MAX_FAILURE_SHARE:.0%} of the plain NUTS run (about "
            f"{verdict.plain_run_seconds:.1f} s), the most failures may cost. Longer runs (more "
            f"tune or draws) may pass; cost_gate=False learns a surrogate anyway. {TIMING}"
        )
    return (
        f"A surrogate cannot pay off in this run, so this chain continues as plain NUTS: an "
        f"exact NUTS iteration {takes} {1e3 * verdict.exact_iteration:.2f} ms (logp and gradient "
        f"{ledger.milliseconds_per_grad():.3f} ms per evaluation), {surrogate}, a speed-up of "
        f"{'at most ' if not verdict.logp_measured else ''}"
        f"{verdict.speedup:.1f}x per draw (at least {MIN_SPEEDUP_PER_DRAW:g}x needed), saving "
        f"about {verdict.saving:.1f} s over the {verdict.remaining} iterations left against "
        f"about {SURROGATE_SETUP_SECONDS:g} s to train one. To learn a surrogate anyway (to "
        f"save it with save_to and reuse it in many runs), pass cost_gate=False. {TIMING}"
    )


def gave_up(
    books: FailureBooks, records: tuple[TrainingRecord, ...], max_validation_error: float
) -> str:
    """Failed trainings and pilots cost more than another attempt could win back."""
    trained = [r for r in records if not r.refit and not r.given]
    errors = [r.validation_error for r in trained if r.validation_error is not None]
    pilots = sum(r.pilot is not None for r in trained)
    detail = (
        f"best held-out error {min(errors):.3g}, needed <= {max_validation_error:g}"
        if errors
        else "too few finite exact evaluations to train on"
    )
    if pilots:
        detail += f"; {pilots} failed pilot(s)"
    return (
        f"The surrogate failed {len(trained)} training(s) ({detail}), which took "
        f"{books.spent:.1f} s; another attempt (about {books.attempt:.1f} s) would take that to "
        f"{books.spent + books.attempt:.1f} s, against about {books.winnable:.1f} s a surrogate "
        f"could still win ({1e3 * books.saving:.2f} ms per iteration over the "
        f"{books.iterations} iterations after the next training and its pilot, times "
        f"{books.quality:.2g} for how far the last fit was from passing) and at most "
        f"{books.cap:.1f} s ({MAX_FAILURE_SHARE:.0%} of a plain NUTS run) that failures may "
        "cost. So this chain stops training and continues as plain NUTS. Try a larger network "
        "or a looser shmc.SwitchTest, or pass cost_gate=False to learn a surrogate whatever it "
        f"costs. {TIMING}"
    )


def not_saved(path, error: OSError) -> str:
    """The surrogate could not be written at the end of tuning."""
    return (
        f"Could not save the surrogate to {str(path)!r} ({type(error).__name__}: {error}); "
        "sampling goes on with it. Give save_to a path in a writable directory, or, with "
        "cores=1, save step.trained_surrogate yourself after sampling."
    )
