"""Quickstart: ``pm.sample(step=shmc.SurrogateHMC())`` beside ``pm.sample()``, same posterior.

A linear regression with 20 strongly correlated predictors (3 latent factors plus a little
noise, 3,000 rows): the posterior of the coefficients is so correlated that PyMC's NUTS, with its
diagonal mass matrix, needs hundreds of leapfrog steps per draw. ``SurrogateHMC`` runs NUTS for
the first tuning iterations, learns the log-likelihood (a Gaussian base plus a network residual),
and then draws with NUTS on the surrogate under a dense mass matrix, each draw corrected with
one exact logp, so the chain targets the exact posterior.

Both samplers run here, one after the other, with the same tune, draws, chains and seed. The
script prints their wall times, effective sample sizes per second and the largest difference
between their posterior means in units of Monte Carlo standard error.

Run with ``nox -s quickstart`` or ``python examples/quickstart.py`` (under a minute);
``--fast`` runs shorter chains (a smoke test).
"""

import argparse
import time

import arviz as az
import numpy as np
import pymc as pm

import surrogate_hmc as shmc

ROWS, FEATURES, FACTORS = 3000, 20, 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="short chains: a smoke test")
    return parser.parse_args()


def correlated_regression() -> pm.Model:
    """``y ~ N(a + X beta, sigma)`` with ``X`` near a 3-dimensional subspace."""
    rng = np.random.default_rng(42)
    loadings = rng.normal(scale=FACTORS**-0.5, size=(FACTORS, FEATURES))
    x = rng.normal(size=(ROWS, FACTORS)) @ loadings + 0.02 * rng.normal(size=(ROWS, FEATURES))
    y = 1.0 + x @ rng.normal(scale=0.5, size=FEATURES) + 0.5 * rng.normal(size=ROWS)
    with pm.Model() as model:
        a = pm.Normal("a", 0.0, 5.0)
        beta = pm.Normal("beta", 0.0, 1.0, shape=FEATURES)
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("y", a + x @ beta, sigma, observed=y)
    return model


def timed(model: pm.Model, step_factory, **kwargs):
    with model:
        start = time.perf_counter()
        step = None if step_factory is None else step_factory()
        idata = pm.sample(step=step, progressbar=False, **kwargs)
    return idata, time.perf_counter() - start


def main(fast: bool = False) -> None:
    model = correlated_regression()
    kwargs = {"tune": 300 if fast else 1000, "draws": 200 if fast else 1000, "chains": 2,
              "cores": 1, "random_seed": 1, "compute_convergence_checks": False}  # fmt: skip
    nuts, nuts_seconds = timed(model, None, **kwargs)
    surrogate, surrogate_seconds = timed(model, shmc.SurrogateHMC, **kwargs)

    print(f"{'':24s}{'PyMC NUTS':>12s}{'SurrogateHMC':>14s}")
    rows = {
        "wall time (s)": (nuts_seconds, surrogate_seconds),
        "min bulk ESS": (min_ess(nuts), min_ess(surrogate)),
    }
    ess, seconds = rows["min bulk ESS"], rows["wall time (s)"]
    rows["ESS per second"] = (ess[0] / seconds[0], ess[1] / seconds[1])
    for name, (left, right) in rows.items():
        print(f"{name:24s}{left:12.1f}{right:14.1f}")
    ratio = rows["ESS per second"][1] / rows["ESS per second"][0]
    phase = np.asarray(surrogate["sample_stats"]["phase"])
    print(f"SurrogateHMC: {ratio:.1f}x NUTS's ESS per second; {phase.mean():.0%} of its draws "
          f"from the surrogate phase")  # fmt: skip
    worst = max_mean_difference(nuts, surrogate)
    print(f"largest posterior-mean difference: {worst:.2f} Monte Carlo standard errors")
    if not np.isfinite(worst) or worst > 5.0:
        raise RuntimeError(f"The posterior means differ by {worst:.1f} MCSE: something is wrong.")


def min_ess(idata) -> float:
    ess = az.ess(idata["posterior"])
    return float(min(np.min(np.asarray(ess[name])) for name in ("a", "beta", "sigma")))


def max_mean_difference(first, second) -> float:
    """Largest |mean difference| over all parameters in units of the combined MCSE."""
    worst = 0.0
    for name in ("a", "beta", "sigma"):
        means = [np.asarray(i["posterior"][name]).mean(axis=(0, 1)) for i in (first, second)]
        errors = [np.asarray(az.mcse(i["posterior"])[name]) for i in (first, second)]
        z = np.abs(means[0] - means[1]) / np.hypot(*errors)
        worst = max(worst, float(np.max(z)))
    return worst


if __name__ == "__main__":
    main(fast=parse_args().fast)
