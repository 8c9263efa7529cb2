"""An expensive Gaussian process: NUTS on a learned log-likelihood, saved and reused.

The model is a GP regression marginal likelihood (``pm.gp.Marginal``) with a Matern 3/2 kernel
and one lengthscale per feature, on 300 simulated points with 2 features:

    ls[i] ~ Gamma(2, 1),  eta ~ HalfNormal(2),  sigma ~ HalfNormal(1),
    y ~ N(0, eta^2 K_Matern32(X; ls) + sigma^2 I).

Every evaluation of its log-density factorizes a 300 x 300 matrix, and its gradient costs
several more such operations: the kind of model a surrogate is for.
``shmc.SurrogateHMC(surrogate="logp", trajectory="nuts")`` learns the log-likelihood from the
values and gradients of PyMC's NUTS at the start of tuning, then runs NUTS on the surrogate,
with one exact logp (no gradient) per draw to correct it exactly (delayed acceptance).

The script shows

1. what the run cost, from the sample stats: the share of iterations in the surrogate phase
   (``phase``), exact gradients and exact logps (``n_exact_grad``, ``n_exact_logp``) over
   tuning and draws, and how well the surrogate agrees with the model
   (``second_stage_acceptance``, 1 is perfect);
2. saving the trained surrogate with ``save_to=`` and reusing it in a second run with
   ``surrogate=<path>``: after a short exact phase (50 iterations) the second run pilots the
   saved surrogate instead of training one, and starts from the step size and mass matrix
   tuned with it, so it tunes for 300 iterations instead of 1000;
3. ``az.summary`` of both runs.

Run with ``python examples/gp.py`` (a few minutes on one core) or ``python examples/gp.py --fast``
(100 points and short chains: a smoke test, well under a minute of sampling; the fast run may
stay exact when its surrogate does not pass the switch test).
"""

import argparse
import tempfile
import time
from pathlib import Path

import arviz as az
import numpy as np
import pymc as pm

import surrogate_hmc as shmc

N_FEATURES = 2
TRUE_LENGTHSCALES = np.array([0.8, 2.0])
TRUE_ETA = 1.0
TRUE_SIGMA = 0.3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="small data, short chains")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def simulate_data(n: int, seed: int = 2024) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` inputs and a GP sample with noise at the true hyperparameters."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3.0, 3.0, size=(n, N_FEATURES))
    scaled = X / TRUE_LENGTHSCALES
    r = np.sqrt(np.sum((scaled[:, None, :] - scaled[None, :, :]) ** 2, axis=-1))
    K = TRUE_ETA**2 * (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r)
    f = np.linalg.cholesky(K + 1e-8 * np.eye(n)) @ rng.normal(size=n)
    return X, f + TRUE_SIGMA * rng.normal(size=n)


def build_model(X: np.ndarray, y: np.ndarray) -> pm.Model:
    with pm.Model() as model:
        ls = pm.Gamma("ls", alpha=2.0, beta=1.0, shape=N_FEATURES)
        eta = pm.HalfNormal("eta", sigma=2.0)
        sigma = pm.HalfNormal("sigma", sigma=1.0)
        cov = eta**2 * pm.gp.cov.Matern32(N_FEATURES, ls=ls)
        gp = pm.gp.Marginal(cov_func=cov)
        gp.marginal_likelihood("y", X=X, y=y, sigma=sigma)
    return model


def stat(idata, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A sample stat over tuning and over the draws, each of shape (chain, draw)."""
    return np.asarray(idata["warmup_sample_stats"][name]), np.asarray(idata["sample_stats"][name])


def report_costs(label: str, idata, seconds: float) -> None:
    """Print what the run cost, from the sample stats of tuning and draws."""
    tune_phase, draw_phase = stat(idata, "phase")
    tune_grads, draw_grads = stat(idata, "n_exact_grad")
    tune_logps, draw_logps = stat(idata, "n_exact_logp")
    second_stage = stat(idata, "second_stage_acceptance")[1]
    print(f"\n{label}: pm.sample took {seconds:.1f} s")
    print(
        f"  iterations in the surrogate phase: {tune_phase.mean():.0%} of tuning, "
        f"{draw_phase.mean():.0%} of draws"
    )
    print(
        f"  exact evaluations in tuning: {tune_grads.sum()} logp+gradient, "
        f"{tune_logps.sum()} logp only"
    )
    print(
        f"  exact evaluations per draw: {draw_grads.mean():.2f} logp+gradient, "
        f"{draw_logps.mean():.2f} logp only"
    )
    if np.any(np.isfinite(second_stage)):
        print(f"  mean second-stage acceptance: {np.nanmean(second_stage):.3f}")
    # PyMC's NUTS pays one logp+gradient per leapfrog step, plus one at each trajectory's start.
    # NUTS on the surrogate builds trees like those NUTS would build on the model: their sizes
    # (n_steps) estimate what a plain NUTS run would have spent.
    steps = np.concatenate([s.ravel() for s in stat(idata, "n_steps")])
    nuts = int(np.sum(steps + 1))
    print(
        f"  PyMC's NUTS would have needed about {nuts} logp+gradient evaluations "
        f"({steps.mean():.1f} leapfrog steps per iteration), "
        f"{nuts / (tune_grads.sum() + draw_grads.sum()):.0f}x this run's"
    )


def report_trainings(step: shmc.SurrogateHMC) -> None:
    """One line per training of the last chain, or per pilot of a surrogate given to it."""
    for record in step.training_history:
        outcome = record.outcome
        if record.pilot is not None and not record.switched:
            outcome += f" ({record.pilot.reason})"
        if record.given:  # nothing was trained: the saved surrogate was piloted
            print(f"  saved surrogate piloted at iteration {record.iteration}: {outcome}")
            continue
        error = record.validation_error
        print(
            f"  training at iteration {record.iteration}: {record.n_points} points, "
            f"validation error {'none' if error is None else f'{error:.3f}'}: {outcome}"
        )


def main(fast: bool = False, seed: int = 1) -> None:
    n, tune, draws, reuse_tune = (100, 200, 100, 100) if fast else (300, 1000, 1000, 300)
    X, y = simulate_data(n)
    model = build_model(X, y)
    sample_kwargs = {
        "draws": draws,
        "chains": 1 if fast else 2,
        "cores": 1,
        "discard_tuned_samples": False,
    }

    with tempfile.TemporaryDirectory() as tmp:
        # Keep this file to reuse the surrogate later (same model and data shapes).
        path = Path(tmp) / "gp_surrogate.npz"

        # First run: PyMC's NUTS at the start of tuning, training, then NUTS on the surrogate.
        # With cores=1 the chains run one after the other here; the last one's surrogate is
        # saved at the end of its tuning. The fast run's 100 points are too cheap a model for a
        # surrogate to pay off: cost_gate=False learns one anyway, so that it runs the example.
        with model:
            step = shmc.SurrogateHMC(
                surrogate="logp", trajectory="nuts", save_to=path, cost_gate=not fast
            )
            start = time.perf_counter()
            first = pm.sample(step=step, tune=tune, random_seed=seed, **sample_kwargs)
            first_seconds = time.perf_counter() - start
        report_costs("First run (trains the surrogate)", first, first_seconds)
        report_trainings(step)

        # Second run, another seed: the saved surrogate is piloted after a short exact phase
        # and, if it still fits the model, used right away (no training), with the step size
        # and mass matrix tuned with it as a start: a shorter tuning is enough.
        second = None
        if path.exists():
            with model:
                step = shmc.SurrogateHMC(surrogate=path)
                start = time.perf_counter()
                second = pm.sample(
                    step=step, tune=reuse_tune, random_seed=seed + 1, **sample_kwargs
                )
                second_seconds = time.perf_counter() - start
            report_costs("Second run (reuses the saved surrogate)", second, second_seconds)
            report_trainings(step)
        else:
            print("\nNo chain switched to the surrogate, so none was saved to reuse.")

    print("\nFirst run:")
    print(az.summary(first, var_names=["ls", "eta", "sigma"]))
    if second is not None:
        print("\nSecond run:")
        print(az.summary(second, var_names=["ls", "eta", "sigma"]))
    check(first, second, fast)


def check(first, second, fast: bool) -> None:
    """Raise if a run is clearly wrong (loose enough that a healthy run never fails)."""
    for label, idata in (("first", first), ("second", second)):
        if idata is None:
            continue
        posterior = idata["posterior"]
        draws = {name: np.asarray(posterior[name]) for name in ("ls", "eta", "sigma")}
        if not all(np.all(np.isfinite(d)) and np.all(d > 0) for d in draws.values()):
            raise RuntimeError(f"The {label} run's draws are not all finite and positive.")
        if draws["ls"].shape[-1] != N_FEATURES:
            raise RuntimeError(f"ls has shape {draws['ls'].shape}, expected {N_FEATURES} last.")
        if fast:
            continue
        # With 300 points the noise scale is pinned down to a few hundredths.
        if abs(draws["sigma"].mean() - TRUE_SIGMA) > 0.1:
            raise RuntimeError(
                f"The {label} run's posterior mean of sigma, {draws['sigma'].mean():.3f}, is far "
                f"from the value that simulated the data, {TRUE_SIGMA}."
            )
        phase = np.asarray(idata["sample_stats"]["phase"])
        if phase.mean() < 0.5:
            raise RuntimeError(
                f"Only {phase.mean():.0%} of the {label} run's draws came from the surrogate phase."
            )
    if not fast and second is None:
        raise RuntimeError("The first run saved no surrogate to reuse.")


if __name__ == "__main__":
    args = parse_args()
    main(fast=args.fast, seed=args.seed)
