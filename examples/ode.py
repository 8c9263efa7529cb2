"""An ODE model whose gradient needs the sensitivities: Lotka-Volterra with ``pm.ode``.

Predator-prey populations follow the Lotka-Volterra equations

    dx/dt = alpha x - beta x y,    dy/dt = -gamma y + delta x y,

observed once a year for 20 years with multiplicative (log-normal) noise; the parameters,
both initial populations and the noise scale are unknown (7 parameters).
``pm.ode.DifferentialEquation`` solves the equations with SciPy's ``odeint``, together with
their sensitivities (the derivatives of the solution with respect to the parameters and the
initial conditions), which is what the gradient needs. Every evaluation, logp or gradient,
solves that augmented system, so each of NUTS's leapfrog steps costs one full solve.

``shmc.SurrogateHMC(surrogate="logp", trajectory="nuts")`` learns the log-likelihood from the
first tens of NUTS iterations (values and gradients at every leapfrog point), then runs NUTS on
the surrogate, corrected exactly with one ODE solve per draw. It suits this model better than
the default gradient surrogate, which trains later (from iteration 200 of 1000) and then runs
static trajectories: side by side here, the gradient surrogate spent twice the ODE solves and
gave 0.6 times the effective samples per second.

The script prints the posterior summary and what the run cost in ODE solves, against an
estimate of what PyMC's NUTS would have spent (a full NUTS run takes too long to include: the
trees NUTS built on the surrogate stand in for the trees it would build on the model), and
checks the posterior against the parameters that simulated the data.

Run with ``python examples/ode.py`` (several minutes: each ODE solve takes tens of
milliseconds), or ``python examples/ode.py --fast`` for a smoke test (one short chain).
"""

import argparse
import time
import warnings

import arviz as az
import numpy as np
import pymc as pm
from scipy.integrate import odeint

import surrogate_hmc as shmc

TRUE = {"alpha": 0.55, "beta": 0.028, "gamma": 0.80, "delta": 0.024}
TRUE_Y0 = np.array([33.0, 6.2])
TRUE_SIGMA = 0.1
YEARS = np.arange(1.0, 21.0)


def lotka_volterra(y, t, p):
    """The right-hand side; ``pm.ode`` traces it with PyTensor to get the sensitivities."""
    alpha, beta, gamma, delta = p[0], p[1], p[2], p[3]
    return [alpha * y[0] - beta * y[0] * y[1], -gamma * y[1] + delta * y[0] * y[1]]


def simulate_data(times: np.ndarray, seed: int = 2024) -> np.ndarray:
    """Solve at the true parameters and add log-normal noise: shape (len(times), 2)."""
    theta = np.array(list(TRUE.values()))
    solution = odeint(lambda y, t: lotka_volterra(y, t, theta), TRUE_Y0, np.r_[0.0, times])[1:]
    rng = np.random.default_rng(seed)
    return solution * np.exp(TRUE_SIGMA * rng.normal(size=solution.shape))


def build_model(times: np.ndarray, observed: np.ndarray) -> pm.Model:
    ode = pm.ode.DifferentialEquation(func=lotka_volterra, times=times, n_states=2, n_theta=4, t0=0)
    with pm.Model() as model:
        # Weakly informative priors around the scale of each rate (a factor of ~2 either way).
        alpha = pm.LogNormal("alpha", np.log(0.5), 0.4)
        beta = pm.LogNormal("beta", np.log(0.025), 0.4)
        gamma = pm.LogNormal("gamma", np.log(0.8), 0.4)
        delta = pm.LogNormal("delta", np.log(0.025), 0.4)
        y0 = pm.LogNormal("y0", np.log(observed[0]), 0.3, shape=2)
        sigma = pm.HalfNormal("sigma", 0.5)
        populations = ode(y0=y0, theta=[alpha, beta, gamma, delta])
        pm.LogNormal("y", mu=pm.math.log(populations), sigma=sigma, observed=observed)
    return model


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="one short chain: a smoke test")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def report_costs(idata, seconds: float) -> None:
    """Print the ODE solves spent, and an estimate of what PyMC's NUTS would have spent."""
    groups = ("warmup_sample_stats", "sample_stats")
    phases = [np.asarray(idata[g]["phase"]) for g in groups]
    steps = np.concatenate([np.asarray(idata[g]["n_steps"]).ravel() for g in groups])
    solves = sum(int(np.sum(idata[g][n])) for g in groups for n in ("n_exact_grad", "n_exact_logp"))
    print(f"\npm.sample took {seconds:.0f} s")
    print(f"surrogate phase: {phases[0].mean():.0%} of tuning, {phases[1].mean():.0%} of draws")
    print(f"ODE solves (with sensitivities) over tuning and draws: {solves}")
    # PyMC's NUTS pays one solve per leapfrog step, plus one at each trajectory's start. NUTS on
    # the surrogate builds trees like those NUTS would build on the model: their sizes (n_steps)
    # estimate what a plain NUTS run would have spent.
    nuts = int(np.sum(steps + 1))
    print(
        f"PyMC's NUTS would have needed about {nuts} ({steps.mean():.1f} leapfrog steps per "
        f"iteration), {nuts / solves:.1f}x as many"
    )
    second_stage = np.asarray(idata["sample_stats"]["second_stage_acceptance"])
    if np.any(np.isfinite(second_stage)):
        print(f"mean second-stage acceptance: {np.nanmean(second_stage):.3f}")


def main(fast: bool = False, seed: int = 1) -> None:
    tune, draws, chains = (200, 100, 1) if fast else (1000, 1000, 2)
    # The fast run caps NUTS's trees at 15 leapfrog steps, to spend fewer solves before the
    # surrogate takes over (any pm.NUTS keyword passes through to SurrogateHMC). It is too
    # short a run for the cost gate to risk a training: cost_gate=False learns one anyway, so
    # that it runs the example.
    options = {"max_treedepth": 4, "cost_gate": False} if fast else {}
    model = build_model(YEARS, simulate_data(YEARS))
    with model, warnings.catch_warnings():
        # PyTensor 3 (PyMC 6) runs pm.ode's SciPy solver as Python code, and asks pm.ode to
        # update how it defines its gradient: notes for PyMC's developers, not for this model.
        warnings.filterwarnings("ignore", "Numba will use object mode", UserWarning)
        warnings.filterwarnings("ignore", "DifferentialEquation should implement", FutureWarning)
        step = shmc.SurrogateHMC(surrogate="logp", trajectory="nuts", **options)
        start = time.perf_counter()
        idata = pm.sample(
            step=step,
            tune=tune,
            draws=draws,
            chains=chains,
            cores=1,
            random_seed=seed,
            discard_tuned_samples=False,
        )
        seconds = time.perf_counter() - start
    print(az.summary(idata, var_names=[*TRUE, "y0", "sigma"], round_to=3))
    report_costs(idata, seconds)
    check(idata, fast)


def check(idata, fast: bool) -> None:
    """Raise if the run is clearly wrong (loose enough that a healthy run never fails)."""
    posterior = idata["posterior"]
    means = {}
    for name in [*TRUE, "y0", "sigma"]:
        values = np.asarray(posterior[name])
        if not (np.all(np.isfinite(values)) and np.all(values > 0)):
            raise RuntimeError(f"The draws of {name} are not all finite and positive.")
        means[name] = values.mean(axis=(0, 1))
    if fast:
        return
    # Twenty years of data pin each rate down to about 5%: a factor 1.5 is far out.
    for name, value in TRUE.items():
        if not value / 1.5 < means[name] < value * 1.5:
            raise RuntimeError(
                f"The posterior mean of {name}, {means[name]:.3f}, is far from "
                f"the value that simulated the data, {value}."
            )
    if np.mean(np.asarray(idata["sample_stats"]["phase"])) < 0.5:
        raise RuntimeError("Fewer than half of the draws came from the surrogate phase.")


if __name__ == "__main__":
    args = parse_args()
    main(fast=args.fast, seed=args.seed)
