"""What the tail check costs: the wall time of ``SurrogateHMC``'s tail checks in a whole run.

Runs ``SurrogateHMC(surrogate="logp", trajectory="nuts")`` on a model of the suite
(``benchmarks/models.py``, full size and run length, 2 chains, ``cores=1``) and times every
call of the tail check (``SurrogateHMC._tail_gap``, compilation of its JAX functions
included) against the whole ``pm.sample``. Run alone on the machine:
``python benchmarks/tail_check_cost.py gp logistic --seeds 1 2 3``.
"""

import argparse
import os
import time

import numpy as np
import pymc as pm
from models import BENCHMARKS

import surrogate_hmc as shmc
from surrogate_hmc.step_methods.surrogate_hmc import SurrogateHMC


def timed_tail_checks() -> tuple[list[float], list[float | None]]:
    """Wrap the tail check so that each call's seconds and result are recorded."""
    seconds: list[float] = []
    gaps: list[float | None] = []
    check = SurrogateHMC._tail_gap

    def timed(self):
        start = time.perf_counter()
        gap = check(self)
        seconds.append(time.perf_counter() - start)
        gaps.append(gap)
        return gap

    SurrogateHMC._tail_gap = timed
    return seconds, gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", choices=list(BENCHMARKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    args = parser.parse_args()
    seconds, gaps = timed_tail_checks()
    print(f"load average {os.getloadavg()}")
    for key in args.models:
        benchmark = BENCHMARKS[key]
        for seed in args.seeds:
            seconds.clear()
            gaps.clear()
            model = benchmark.build(**benchmark.size)
            with model:
                start = time.perf_counter()
                idata = pm.sample(
                    step=shmc.SurrogateHMC(surrogate="logp", trajectory="nuts"),
                    tune=benchmark.tune or 1000, draws=benchmark.draws or 1000, chains=2,
                    cores=1, random_seed=seed, progressbar=False,
                    compute_convergence_checks=False,
                )  # fmt: skip
                wall = time.perf_counter() - start
            phase = np.asarray(idata["sample_stats"]["phase"])
            shown = [None if g is None else round(g, 2) for g in gaps]
            print(
                f"{key} seed {seed}: run {wall:.1f} s, {len(seconds)} tail checks took "
                f"{sum(seconds):.2f} s ({sum(seconds) / wall:.1%}), gaps {shown}, "
                f"surrogate draws {phase.mean():.0%}"
            )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
