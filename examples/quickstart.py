"""Quickstart: a drop-in PyMC step method that learns a gradient surrogate and stays exact.

A linear regression (3 coefficients and a noise scale, 400 points) is sampled with
``pm.sample(step=shmc.SurrogateHMC())``: PyMC's NUTS runs at the start of tuning, a network
learns the gradient of the log-likelihood from every exact evaluation, and once it passes its
switch test the draws come from surrogate trajectories, each corrected with one exact logp.
This model is far too cheap for a surrogate to pay off (a ``SurrogateCostWarning`` says so); it
only shows the mechanics. See ``gp.py`` and ``ode.py`` for models where it does pay off.

Run with ``nox -s quickstart`` or ``python examples/quickstart.py`` (about a minute);
``--fast`` runs a shorter chain (a smoke test, about 20 seconds).
"""

import argparse

import arviz as az
import numpy as np
import pymc as pm

import surrogate_hmc as shmc

TRUE_BETA = np.array([1.0, -2.0, 0.5])
TRUE_SIGMA = 0.7


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="short chains: a smoke test")
    return parser.parse_args()


def main(fast: bool = False) -> None:
    rng = np.random.default_rng(42)
    x = rng.normal(size=(400, 3))
    y = x @ TRUE_BETA + rng.normal(scale=TRUE_SIGMA, size=400)
    tune, draws = (300, 200) if fast else (1000, 1000)

    with pm.Model():
        beta = pm.Normal("beta", 0.0, 5.0, shape=3)
        sigma = pm.HalfNormal("sigma", 2.0)
        pm.Normal("y", x @ beta, sigma, observed=y)
        idata = pm.sample(step=shmc.SurrogateHMC(), tune=tune, draws=draws, chains=2, cores=1,
                          random_seed=1)  # fmt: skip

    stats = idata["sample_stats"]
    phase = np.asarray(stats["phase"])
    print(az.summary(idata))
    print(f"draws from the surrogate phase: {phase.mean():.0%}")
    print(f"exact gradient evaluations in the draws: {int(np.sum(stats['n_exact_grad']))}")
    print(f"exact logp evaluations in the draws: {int(np.sum(stats['n_exact_logp']))}")
    check(idata, phase, fast)


def check(idata, phase: np.ndarray, fast: bool) -> None:
    """Raise if the run is clearly wrong (loose enough that a healthy run never fails)."""
    posterior = idata["posterior"]
    beta = np.asarray(posterior["beta"]).reshape(-1, 3)
    sigma = np.asarray(posterior["sigma"]).ravel()
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(sigma))):
        raise RuntimeError("The posterior draws are not all finite.")
    # The posterior sd of each coefficient is about 0.04: 0.3 is many standard deviations.
    if np.max(np.abs(beta.mean(axis=0) - TRUE_BETA)) > 0.3 or abs(sigma.mean() - TRUE_SIGMA) > 0.2:
        raise RuntimeError(
            f"Posterior means {beta.mean(axis=0)}, {sigma.mean():.2f} are far "
            f"from the truth {TRUE_BETA}, {TRUE_SIGMA}."
        )
    if not fast and phase.mean() < 0.5:
        raise RuntimeError("Fewer than half of the draws came from the surrogate phase.")


if __name__ == "__main__":
    main(fast=parse_args().fast)
