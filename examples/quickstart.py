"""Quickstart: ``shmc.sample()`` and ``pm.sample(step=shmc.SurrogateHMC())`` beside
``pm.sample()``, same posterior.

A linear regression with 20 strongly correlated predictors (3 latent factors plus a little
noise, 3,000 rows): the posterior of the coefficients is so correlated that NUTS with a
diagonal mass matrix (PyMC's, or nutpie's, which ``pm.sample()`` runs on PyMC 6) needs hundreds
of leapfrog steps per draw.

- ``SurrogateHMC`` runs NUTS for the first tuning iterations, learns the log-likelihood (a
  Gaussian base plus a network residual), and then draws with NUTS on the surrogate under a
  dense mass matrix, each draw corrected with one exact logp.
- ``shmc.sample()`` runs every chain at once. Here one exact gradient is too cheap for a
  surrogate to pay for its setup, so it hands the run to nutpie with its low-rank metric,
  which learns the correlations from the draws and gradients.

All three target the exact posterior. They run one after the other, with the same tune, draws,
chains and seed; the script prints their wall times, effective sample sizes per second and the
largest difference of each one's posterior means from ``pm.sample()``'s, in Monte Carlo
standard errors.

Run with ``nox -s quickstart`` or ``python examples/quickstart.py`` (about a minute);
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


def timed_engine(model: pm.Model, **kwargs):
    with model:
        start = time.perf_counter()
        idata = shmc.sample(
            draws=kwargs["draws"], tune=kwargs["tune"], chains=kwargs["chains"],
            random_seed=kwargs["random_seed"], progressbar=False,
        )  # fmt: skip
    return idata, time.perf_counter() - start


def main(fast: bool = False) -> None:
    model = correlated_regression()
    kwargs = {"tune": 300 if fast else 1000, "draws": 200 if fast else 1000, "chains": 2,
              "cores": 1, "random_seed": 1, "compute_convergence_checks": False}  # fmt: skip
    runs = {
        "pm.sample()": timed(model, None, **kwargs),
        "SurrogateHMC": timed(model, shmc.SurrogateHMC, **kwargs),
        "shmc.sample()": timed_engine(model, **kwargs),
    }
    print(f"{'':24s}" + "".join(f"{name:>15s}" for name in runs))
    seconds = [wall for _, wall in runs.values()]
    ess = [min_ess(idata) for idata, _ in runs.values()]
    rows = {
        "wall time (s)": seconds,
        "min bulk ESS": ess,
        "ESS per second": [e / s for e, s in zip(ess, seconds, strict=True)],
    }
    for name, values in rows.items():
        print(f"{name:24s}" + "".join(f"{value:15.1f}" for value in values))
    reference, _ = runs["pm.sample()"]
    per_second = rows["ESS per second"]
    for index, (name, (idata, _)) in enumerate(runs.items()):
        if index == 0:
            continue
        worst = max_mean_difference(reference, idata)
        print(f"{name}: {per_second[index] / per_second[0]:.1f}x pm.sample()'s ESS per second; "
              f"posterior means within {worst:.2f} Monte Carlo standard errors of its")  # fmt: skip
        if not np.isfinite(worst) or worst > 5.0:
            raise RuntimeError(f"{name}'s means differ by {worst:.1f} MCSE: something is wrong.")
    phase = np.asarray(runs["SurrogateHMC"][0]["sample_stats"]["phase"])
    decision = runs["shmc.sample()"][0]["posterior"].attrs["surrogate_decision"]
    print(f"SurrogateHMC made {phase.mean():.0%} of its draws in the surrogate phase; "
          f"shmc.sample(): {decision}")  # fmt: skip


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
