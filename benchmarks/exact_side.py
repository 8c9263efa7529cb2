"""Which exact sampler should ``shmc.sample`` drive: nutpie or BlackJAX's NUTS over all chains?

The engine's exact phase (and its fallback when no surrogate pays) must be as fast as the
strongest exact peer, and its draws (with their gradients) are the surrogate's training data.
Two candidates, each timed as a whole in a fresh process (compilation included, JAX's
compilation cache off), on the suite's models (``benchmarks/models.py``):

- ``nutpie``: ``nutpie.compile_pymc_model`` (numba) and ``nutpie.sample`` with
  ``adaptation="low_rank"``, ``store_gradient=True``: the strongest peer itself, driven as the
  exact sampler (chains on ``--cores`` threads);
- ``nutpie_jax``: the same with ``backend="jax"`` (the engine's surrogate phase is JAX, so the
  exact logp would be compiled once);
- ``blackjax_diag`` / ``blackjax_dense``: PyMC's model as one JAX log-density of a flat vector
  (``pymc.sampling.jax.get_jaxified_logp``), BlackJAX's window adaptation and NUTS, all chains
  ``vmap``-ed in one compiled program.

Each reports the min bulk ESS over the unconstrained coordinates (the space every sampler
moves in), ESS/s, and gradient evaluations per draw. Run:
``python benchmarks/exact_side.py --models gp logistic regression gaussian hierarchical``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLERS = ("nutpie", "nutpie_jax", "blackjax_diag", "blackjax_dense")


def flat_initial_points(model, chains: int, seed: int):
    """The model's initial point, jittered by U(-1, 1) per chain, as flat vectors."""
    from pymc.blocking import DictToArrayBijection

    point = model.initial_point()
    values = {v.name: point[v.name] for v in model.value_vars}
    flat = DictToArrayBijection.map(values).data
    rng = np.random.default_rng(seed)
    return flat + rng.uniform(-1.0, 1.0, size=(chains, flat.size))


def run_blackjax(model, *, tune: int, draws: int, chains: int, seed: int, dense: bool):
    """BlackJAX window adaptation and NUTS on every chain at once; draws and steps per draw."""
    import blackjax
    import jax
    import jax.numpy as jnp
    from pymc.sampling.jax import get_jaxified_logp

    logp = get_jaxified_logp(model)  # the log-density, despite the name of its argument
    point = model.initial_point()
    shapes = [np.shape(point[v.name]) for v in model.value_vars]
    sizes = [int(np.prod(s, dtype=int)) for s in shapes]
    splits = np.cumsum(sizes)[:-1].tolist()

    def logdensity(x):
        parts = jnp.split(x, splits) if splits else [x]
        return logp([p.reshape(s) for p, s in zip(parts, shapes, strict=True)])

    warmup = blackjax.window_adaptation(
        blackjax.nuts, logdensity, is_mass_matrix_diagonal=not dense, target_acceptance_rate=0.8
    )

    @jax.jit
    def run(keys, positions):
        def one_chain(key, position):
            warm_key, sample_key = jax.random.split(key)
            (state, parameters), _ = warmup.run(warm_key, position, num_steps=tune)
            step = blackjax.nuts(logdensity, **parameters).step

            def body(state, key):
                state, info = step(key, state)
                return state, (state.position, info.num_integration_steps)

            _, (positions, steps) = jax.lax.scan(body, state, jax.random.split(sample_key, draws))
            return positions, steps

        return jax.vmap(one_chain)(keys, positions)

    positions = jnp.asarray(flat_initial_points(model, chains, seed))
    keys = jax.random.split(jax.random.key(seed), chains)
    draws_, steps = jax.block_until_ready(run(keys, positions))
    return np.asarray(draws_), float(np.mean(steps))


def run_nutpie(model, *, tune: int, draws: int, chains: int, seed: int, cores: int, backend: str):
    """nutpie with low-rank adaptation; unconstrained draws and steps per draw."""
    import nutpie

    kwargs = {"gradient_backend": "jax"} if backend == "jax" else {}
    compiled = nutpie.compile_pymc_model(model, backend=backend, **kwargs)
    trace = nutpie.sample(
        compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
        progress_bar=False, adaptation="low_rank", store_unconstrained=True,
        store_gradient=True,
    )  # fmt: skip
    stats = trace["sample_stats"]
    draws_ = np.asarray(stats["unconstrained_draw"])
    return draws_, float(np.mean(np.asarray(stats["n_steps"])))


def min_bulk_ess(draws: np.ndarray) -> float:
    """The smallest bulk ESS over the coordinates of draws shaped (chain, draw, dim)."""
    try:
        from arviz_stats.base import array_stats

        return float(np.min(array_stats.ess(draws, chain_axis=0, draw_axis=1, method="bulk")))
    except ImportError:  # ArviZ 0.x
        import arviz as az

        return float(min(az.ess(draws[:, :, i], method="bulk") for i in range(draws.shape[2])))


def worker(spec: dict) -> dict:
    """One timed run, in this (fresh) process."""
    from models import BENCHMARKS
    from threadpoolctl import threadpool_limits

    benchmark = BENCHMARKS[spec["model"]]
    with threadpool_limits(1):
        model = benchmark.build(**benchmark.size)
        start = time.perf_counter()
        common = {k: spec[k] for k in ("tune", "draws", "chains", "seed")}
        sampler = spec["sampler"]
        if sampler.startswith("blackjax"):
            draws, steps = run_blackjax(model, dense=sampler == "blackjax_dense", **common)
        else:
            backend = "jax" if sampler == "nutpie_jax" else "numba"
            draws, steps = run_nutpie(model, cores=spec["cores"], backend=backend, **common)
        seconds = time.perf_counter() - start
    ess = min_bulk_ess(draws)
    return {**spec, "seconds": seconds, "min_bulk_ess": ess, "ess_per_s": ess / seconds,
            "steps_per_draw": steps}  # fmt: skip


def run_in_fresh_process(spec: dict) -> dict | None:
    """:func:`worker` in a new interpreter with an empty JAX compilation cache."""
    env = os.environ | {"JAX_ENABLE_COMPILATION_CACHE": "false"}
    with tempfile.TemporaryDirectory() as cache:
        result = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            capture_output=True, text=True, cwd=Path(__file__).parent,
            env=env | {"SURROGATE_HMC_CACHE_DIR": cache},
        )  # fmt: skip
    if result.returncode:
        print(f"{spec['model']} {spec['sampler']} seed {spec['seed']} failed:")
        print(result.stderr[-2000:])
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["logistic", "regression", "gaussian"])
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    print(f"load average {os.getloadavg()}", flush=True)
    rows = []
    for model in args.models:
        for index, seed in enumerate(args.seeds):
            shift = index % len(args.samplers)  # whichever runs second inherits warm caches
            for sampler in args.samplers[shift:] + args.samplers[:shift]:
                spec = {"model": model, "sampler": sampler, "seed": seed, "tune": args.tune,
                        "draws": args.draws, "chains": args.chains,
                        "cores": args.cores}  # fmt: skip
                row = run_in_fresh_process(spec)
                if row is None:
                    continue
                rows.append(row)
                print(f"{model:12} {sampler:15} seed {seed}: {row['seconds']:7.1f} s, "
                      f"min bulk ESS {row['min_bulk_ess']:7.0f}, {row['ess_per_s']:7.1f} ESS/s, "
                      f"{row['steps_per_draw']:5.1f} steps/draw", flush=True)  # fmt: skip
    print(f"load average {os.getloadavg()}")
    for model in args.models:
        for sampler in args.samplers:
            values = [
                r["ess_per_s"] for r in rows if r["model"] == model and r["sampler"] == sampler
            ]
            if values:
                print(f"{model:12} {sampler:15} median ESS/s {np.median(values):8.1f} "
                      f"[{min(values):.1f}-{max(values):.1f}]")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
