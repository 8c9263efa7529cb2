"""Quickstart: a drop-in PyMC step method that learns a gradient surrogate and stays exact.

Run with ``nox -s quickstart`` or ``python examples/quickstart.py``.
"""

import arviz as az
import numpy as np
import pymc as pm

import surrogate_hmc as shmc


def main() -> None:
    rng = np.random.default_rng(42)
    x = rng.normal(size=(400, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.7, size=400)

    with pm.Model():
        beta = pm.Normal("beta", 0.0, 5.0, shape=3)
        sigma = pm.HalfNormal("sigma", 2.0)
        pm.Normal("y", x @ beta, sigma, observed=y)
        idata = pm.sample(step=shmc.SurrogateHMC(), tune=1000, draws=1000, chains=2, cores=1,
                          random_seed=1)  # fmt: skip

    stats = idata["sample_stats"]
    print(az.summary(idata))
    print(f"draws from the surrogate phase: {float(np.mean(stats['phase'])):.0%}")
    print(f"exact gradient evaluations in the draws: {int(np.sum(stats['n_exact_grad']))}")
    print(f"exact logp evaluations in the draws: {int(np.sum(stats['n_exact_logp']))}")


if __name__ == "__main__":
    main()
