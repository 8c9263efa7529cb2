"""A simulator model with ACE: fit a cost estimator once, sample any observation without simulating.

The data are a noisy line observed at 10 points of ``t`` in [-1, 1], available only through a
simulator (a ``pm.Simulator``, so there is no likelihood to evaluate):

    theta ~ U(-1.5, 1.5)^2,    x_j = theta_0 + theta_1 t_j + N(0, 0.1^2).

``shmc.CostEstimator.fit`` simulates from the prior and trains a network ``f(theta, x)`` of the
expected distance (here the mean squared error) between simulations at ``theta`` and data ``x``
(amortized cost estimation, arXiv:2305.15208). ``shmc.ACE`` then samples the generalized-Bayes
posterior ``p(theta | x_o) ∝ p(theta) exp(-beta f(theta, x_o))`` with NUTS on it. The estimator is
saved, loaded back, and used for two different observations: the second one needs no new
simulation. The simulator counts its calls in a file (the simulations run in worker processes),
so the script can show that sampling runs none.

For this simulator the target is known: the expected MSE is
``mean((theta_0 + theta_1 t - x_o)^2) + 0.1^2``, so the posterior (well inside the prior's box)
is a Gaussian centred on the least-squares line through ``x_o``, with standard deviations
``1 / sqrt(2 beta)`` and ``1 / sqrt(2 beta mean(t^2))`` (``t`` is centred), which the script
checks.

Requirements of scripts that use ACE (see the README):

- ``CostEstimator.fit`` runs the simulations in local worker processes started with
  ``forkserver``, which import this file again: the ``if __name__ == "__main__":`` guard is
  required.
- Fitting runs JAX in this process, and a forked copy of a process that has run JAX hangs, so
  ``pm.sample`` with ``cores > 1`` needs ``mp_ctx="forkserver"`` (``--cores 2`` shows it).
  Sampling the network takes seconds, so by default the chains run one after the other in this
  process (``cores=1``): a fresh chain process costs more than that to start.

Run with ``python examples/ace.py`` (about a minute), or ``python examples/ace.py --fast``
(fewer simulations and shorter chains: a smoke test).
"""

import argparse
import tempfile
from pathlib import Path

import arviz as az
import numpy as np
import pymc as pm

import surrogate_hmc as shmc

T = np.linspace(-1.0, 1.0, 10)
NOISE = 0.1
PRIOR_BOUND = 1.5
BETA = 50.0  # inverse temperature of the generalized-Bayes posterior


def simulate(rng: np.random.Generator, theta: np.ndarray, size=None) -> np.ndarray:
    """One simulation at ``theta``, called as PyMC calls simulators."""
    return theta[0] + theta[1] * T + NOISE * rng.normal(size=T.size)


class CountedSimulator:
    """``simulate``, appending one byte to a file per call: a count across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(b"")

    def __call__(self, rng, theta, size=None):
        with open(self.path, "ab") as log:
            log.write(b".")
        return simulate(rng, theta, size)

    @property
    def calls(self) -> int:
        return self.path.stat().st_size


def build_model(simulator, observed: np.ndarray) -> pm.Model:
    with pm.Model() as model:
        theta = pm.Uniform("theta", -PRIOR_BOUND, PRIOR_BOUND, shape=2)
        pm.Simulator("x", simulator, theta, observed=observed)
    return model


def least_squares(observed: np.ndarray) -> np.ndarray:
    """The centre of the generalized-Bayes posterior for the MSE distance: the fitted line."""
    design = np.column_stack([np.ones_like(T), T])
    return np.linalg.lstsq(design, observed, rcond=None)[0]


def posterior_sd() -> np.ndarray:
    """The generalized-Bayes posterior's standard deviations (0.1 and 0.16 with BETA = 50)."""
    return 1.0 / np.sqrt(2.0 * BETA * np.array([1.0, np.mean(T**2)]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="fewer simulations, short chains")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cores", type=int, default=1, help="chains sampled in parallel")
    return parser.parse_args()


def main(fast: bool = False, seed: int = 1, cores: int = 1) -> None:
    n_simulations, tune, draws = (500, 200, 200) if fast else (2000, 1000, 1000)
    rng = np.random.default_rng(seed)
    observations = {
        "first": simulate(rng, np.array([0.5, -0.8])),
        "second": simulate(rng, np.array([-0.7, 1.0])),
    }

    with tempfile.TemporaryDirectory() as tmp:
        simulator = CountedSimulator(Path(tmp) / "calls")

        # Fit once, from prior simulations (run in worker processes), and save.
        model = build_model(simulator, observations["first"])
        estimator = shmc.CostEstimator.fit(
            model, n_simulations=n_simulations, distance="mse", random_seed=seed
        )
        path = estimator.save(Path(tmp) / "cost.npz")
        print(
            f"simulator calls to fit the estimator: {simulator.calls} "
            f"(validation error {estimator.validation_error:.3f})"
        )

        # Load it (in a real project: in another session) and sample both observations.
        estimator = shmc.CostEstimator.load(path)
        results = {}
        for name, observed in observations.items():
            calls_before = simulator.calls
            with build_model(simulator, observed):
                idata = pm.sample(
                    step=shmc.ACE(estimator=estimator, beta=BETA),
                    tune=tune,
                    draws=draws,
                    chains=2,
                    random_seed=seed,
                    # JAX ran here (the fit): chain processes must not be forked from us.
                    cores=cores,
                    mp_ctx="forkserver" if cores > 1 else None,
                )
            new_calls = simulator.calls - calls_before
            results[name] = (idata, new_calls)
            print(f"\n{name} observation: {new_calls} new simulator calls while sampling")
            print(az.summary(idata, var_names=["theta"]))
            print(
                f"target (known for this simulator): mean {np.round(least_squares(observed), 3)}"
                f", sd {np.round(posterior_sd(), 3)}"
            )
    check(results, observations, fast)


def check(results: dict, observations: dict, fast: bool) -> None:
    """Raise if the run is clearly wrong (loose enough that a healthy run never fails)."""
    for name, (idata, new_calls) in results.items():
        if new_calls:
            raise RuntimeError(f"Sampling the {name} observation ran {new_calls} simulations.")
        theta = np.asarray(idata["posterior"]["theta"]).reshape(-1, 2)
        if not (np.all(np.isfinite(theta)) and np.all(np.abs(theta) <= PRIOR_BOUND)):
            raise RuntimeError(f"The {name} observation's draws leave the prior's support.")
        if fast:
            continue
        # 0.3 is two to three posterior sds: room for the network's error, none for a failure.
        mean, sd = theta.mean(axis=0), theta.std(axis=0)
        if np.any(np.abs(mean - least_squares(observations[name])) > 0.3):
            raise RuntimeError(
                f"The {name} observation's posterior mean {mean} is far from the least-squares "
                "line through it."
            )
        if np.any(np.abs(sd / posterior_sd() - 1.0) > 0.3):
            raise RuntimeError(
                f"The {name} observation's posterior sds {sd} are far from the target's "
                f"{posterior_sd()}."
            )


if __name__ == "__main__":
    args = parse_args()
    main(fast=args.fast, seed=args.seed, cores=args.cores)
