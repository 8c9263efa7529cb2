"""``shmc.sample`` against nutpie with its low-rank metric, each run alone in a fresh process.

Each (model, seed, sampler) runs in its own Python process with an empty JAX compilation cache,
so compilation is included; the whole call is timed (``nutpie.compile_pymc_model`` and
``nutpie.sample``; ``shmc.sample``). ESS is the minimum bulk ESS over the posterior's
variables. Run (alone on the machine):
``python benchmarks/engine_vs_nutpie.py --models gp regression --seeds 1 2``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SAMPLERS = ("nutpie_low_rank", "shmc_sample")


def one_run(model_key: str, size: dict, sampler: str, seed: int, tune: int, draws: int) -> dict:
    import arviz as az
    import numpy as np

    sys.path.insert(0, os.path.dirname(__file__))
    from models import BENCHMARKS
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # as the suite: one BLAS thread, one core for nutpie's chains
    model = BENCHMARKS[model_key].build(**size)
    start = time.perf_counter()
    if sampler == "nutpie_low_rank":
        import nutpie

        compiled = nutpie.compile_pymc_model(model, backend="numba")
        idata = nutpie.sample(
            compiled, chains=4, cores=1, tune=tune, draws=draws, seed=seed,
            adaptation="low_rank", progress_bar=False,
        )  # fmt: skip
        decision, phases = "-", {}
    else:
        import surrogate_hmc as shmc

        with model:
            idata = shmc.sample(
                draws=draws, tune=tune, chains=4, random_seed=seed, progressbar=False
            )
        attrs = idata["posterior"].attrs
        decision = attrs["surrogate_decision"]
        phases = {k: round(v, 1) for k, v in attrs.items() if k.startswith("seconds_")}
        phases |= {k: attrs[k] for k in ("exact_gradients", "exact_logps", "switched_at")
                   if k in attrs}  # fmt: skip
    seconds = time.perf_counter() - start
    ess = az.ess(idata["posterior"] if hasattr(idata, "children") else idata, method="bulk")
    ess = ess.to_dataset() if hasattr(ess, "to_dataset") else ess
    min_ess = float(min(np.min(ess[name].values) for name in ess.data_vars))
    return {"model": model_key, "sampler": sampler, "seed": seed, "seconds": seconds,
            "min_bulk_ess": min_ess, "ess_per_second": min_ess / seconds,
            "decision": decision, **phases, "load": os.getloadavg()[0]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["gp", "regression"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--gp-n", type=int, default=300)
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "SAMPLER", "SEED"))
    args = parser.parse_args()
    sizes = {"gp": {"n": args.gp_n}}
    if args.one:
        model, sampler, seed = args.one
        print(json.dumps(one_run(model, sizes.get(model, {}), sampler, int(seed), args.tune,
                                 args.draws)))  # fmt: skip
        return
    for model in args.models:
        for index, seed in enumerate(args.seeds):
            order = SAMPLERS[index % 2 :] + SAMPLERS[: index % 2]
            for sampler in order:
                with tempfile.TemporaryDirectory() as cache:
                    env = os.environ | {"SURROGATE_HMC_CACHE_DIR": cache}
                    out = subprocess.run(
                        [sys.executable, __file__, "--one", model, sampler, str(seed),
                         "--tune", str(args.tune), "--draws", str(args.draws),
                         "--gp-n", str(args.gp_n)],
                        env=env, capture_output=True, text=True, check=True,
                    )  # fmt: skip
                print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
