"""Draw ``docs/_static/diagnostics.png``: ``shmc.plot_diagnostics`` after a GP regression run.

A Gaussian process with a Matern 3/2 kernel on 200 points in 2 dimensions (every gradient is an
O(n^3) Cholesky), sampled by ``SurrogateHMC`` with two chains, tuning kept, ``cores=1`` (so the
step keeps the last chain's training history). About a minute on one core::

    python docs/scripts/diagnostics_figure.py
    python docs/scripts/diagnostics_figure.py --surrogate gradient --out /tmp/diagnostics.png
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # BLAS on one thread: the run is small

import matplotlib as mpl
import numpy as np
import pymc as pm

import surrogate_hmc as shmc

mpl.use("Agg")

OUT = Path(__file__).resolve().parents[1] / "_static" / "diagnostics.png"


def gp_model(n: int = 200, seed: int = 0) -> pm.Model:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 10.0, size=(n, 2))
    y = np.sin(x[:, 0]) + 0.5 * np.cos(0.7 * x[:, 1]) + 0.2 * rng.normal(size=n)
    with pm.Model() as model:
        lengthscale = pm.Gamma("lengthscale", alpha=2.0, beta=1.0, shape=2)
        amplitude = pm.HalfNormal("amplitude", 1.0)
        noise = pm.HalfNormal("noise", 1.0)
        cov = amplitude**2 * pm.gp.cov.Matern32(2, ls=lengthscale)
        pm.gp.Marginal(cov_func=cov).marginal_likelihood("y", X=x, y=y, sigma=noise)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surrogate", choices=["logp", "gradient"], default="logp")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with gp_model():
        step = shmc.SurrogateHMC(surrogate=args.surrogate)
        idata = pm.sample(
            step=step,
            tune=600,
            draws=400,
            chains=2,
            cores=1,
            random_seed=args.seed,
            discard_tuned_samples=False,  # keep tuning: the exact phase and the switch
            progressbar=False,
            compute_convergence_checks=False,
        )
    figure = shmc.plot_diagnostics(idata, step)
    figure.savefig(args.out, dpi=80)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")
    for record in step.training_history:
        print(
            f"iteration {record.iteration}, {record.n_points} points, error "
            f"{record.validation_error}, {record.seconds:.1f} s: {record.outcome}"
        )


if __name__ == "__main__":
    main()
