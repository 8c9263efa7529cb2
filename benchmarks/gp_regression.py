"""GP regression benchmark: ``SurrogateHMC`` side by side with PyMC's NUTS.

The model is a GP-regression marginal likelihood (``pm.gp.Marginal``) with a Matern 3/2 kernel
and one lengthscale per feature (ARD), on simulated data (4 features, fixed numpy seed):

    ls[i] ~ Gamma(2, 1),  eta ~ HalfNormal(2),  sigma ~ HalfNormal(1),
    y ~ N(0, eta^2 K_Matern32(X; ls) + sigma^2 I).

All samplers run in the same process with the same seed, and each whole ``pm.sample`` call is
timed (compilation included), with BLAS limited to one thread (``--blas-threads``):

- ``nuts``: PyMC's NUTS;
- ``gradient``: ``SurrogateHMC()``, a gradient surrogate with static trajectories (NNgHMC);
- ``logp``: ``SurrogateHMC(surrogate="logp", trajectory="nuts")``, NUTS on a log-likelihood
  surrogate with a delayed-acceptance exact correction.

Exact evaluations are counted over tuning and draws:

- NUTS: gradient evaluations = sum of ``n_steps`` (leapfrog steps) + 1 per iteration, for the
  logp and gradient PyMC's ``BaseHMC`` evaluates at the start of each trajectory.
- SurrogateHMC: sums of its ``n_exact_grad`` and ``n_exact_logp`` stats (the start-of-trajectory
  gradient is already included in ``n_exact_grad``).

The ``logp`` sampler is checked against the targets of issue 3 (>= 8x NUTS's ESS/s,
second-stage acceptance >= 0.9, posterior means within 3 MCSE of NUTS, a surrogate-phase draw
costing at most 1.5 exact logp evaluations).

Reproduce with ``nox -s benchmark`` (which runs ``python benchmarks/gp_regression.py``), or
``python benchmarks/gp_regression.py --quick`` for a smoke run (n=100, tune=300, draws=200).
"""

import argparse
import time

import arviz as az
import numpy as np
import pymc as pm
from threadpoolctl import threadpool_limits

import surrogate_hmc as shmc

N_FEATURES = 4
DATA_SEED = 20240601
TRUE_LENGTHSCALES = np.array([0.7, 1.2, 2.0, 4.0])
TRUE_ETA = 1.0
TRUE_SIGMA = 0.3
TIMING_CALLS = 200
STATS_GROUPS = ("warmup_sample_stats", "sample_stats")
SAMPLERS = {
    "nuts": ("PyMC NUTS", None),
    "gradient": ("SurrogateHMC gradient/static", {}),
    "logp": ("SurrogateHMC logp/NUTS", {"surrogate": "logp", "trajectory": "nuts"}),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="number of data points")
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="BLAS threads per process (0: no limit)"
    )
    parser.add_argument(
        "--samplers", nargs="+", choices=list(SAMPLERS), default=list(SAMPLERS),
        help="samplers to compare (NUTS always runs: it is the reference)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: n=100, tune=300, draws=200"
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.tune, args.draws = 100, 300, 200
    args.samplers = [
        "nuts",
        *(name for name in SAMPLERS if name in args.samplers and name != "nuts"),
    ]
    return args


def matern32(X: np.ndarray, lengthscales: np.ndarray, eta: float) -> np.ndarray:
    scaled = X / lengthscales
    sq = np.sum(scaled**2, axis=1)
    r = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * scaled @ scaled.T, 0.0))
    return eta**2 * (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r)


def simulate(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEED)
    X = rng.normal(size=(n, N_FEATURES))
    cov = matern32(X, TRUE_LENGTHSCALES, TRUE_ETA) + 1e-8 * np.eye(n)
    f = np.linalg.cholesky(cov) @ rng.normal(size=n)
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


def timed_sample(model: pm.Model, args: argparse.Namespace, step_kwargs: dict | None):
    kwargs = {
        "tune": args.tune,
        "draws": args.draws,
        "chains": args.chains,
        "cores": args.cores,
        "random_seed": args.seed,
        "discard_tuned_samples": False,
        "compute_convergence_checks": False,
        "progressbar": False,
    }
    with model:
        start = time.perf_counter()
        if step_kwargs is not None:
            idata = pm.sample(step=shmc.SurrogateHMC(**step_kwargs), **kwargs)
        else:
            idata = pm.sample(nuts_sampler="pymc", **kwargs)
        return idata, time.perf_counter() - start


def group(idata, name: str):
    data = idata[name]
    return data.to_dataset() if hasattr(data, "to_dataset") else data


def has_group(idata, name: str) -> bool:
    try:
        idata[name]
    except KeyError:
        return False
    return True


def stat_total(idata, name: str, groups=STATS_GROUPS) -> float:
    return float(sum(group(idata, g)[name].values.sum() for g in groups if has_group(idata, g)))


def iterations(idata) -> int:
    return int(sum(group(idata, g)["n_steps"].size for g in STATS_GROUPS if has_group(idata, g)))


def flatten(dataset) -> dict[str, float]:
    values = {}
    for name, array in dataset.data_vars.items():
        data = np.asarray(array.values)
        if data.ndim == 0:
            values[name] = float(data)
            continue
        for index in np.ndindex(data.shape):
            values[f"{name}[{','.join(map(str, index))}]"] = float(data[index])
    return values


def summarize(idata, wall_time: float, surrogate: bool) -> dict:
    posterior = group(idata, "posterior")
    stats = group(idata, "sample_stats")
    bulk = flatten(az.ess(posterior, method="bulk"))
    summary = {
        "wall_time": wall_time,
        "min_bulk_ess": min(bulk.values()),
        "min_tail_ess": min(flatten(az.ess(posterior, method="tail")).values()),
        "means": flatten(posterior.mean(("chain", "draw"))),
        "mcse": flatten(az.mcse(posterior)),
        "bulk_ess": bulk,
        "acceptance": float(stats["acceptance_rate"].mean()),
        "draw_time": float(stats["perf_counter_diff"].mean()),
        "tune_step_time": stat_total(idata, "perf_counter_diff", ("warmup_sample_stats",)),
        "draw_step_time": stat_total(idata, "perf_counter_diff", ("sample_stats",)),
    }
    summary["ess_per_s"] = summary["min_bulk_ess"] / wall_time
    if surrogate:
        phase = stats["phase"].values
        summary["grad_evals"] = int(stat_total(idata, "n_exact_grad"))
        summary["logp_evals"] = int(stat_total(idata, "n_exact_logp"))
        summary["surrogate_fraction"] = float(np.mean(phase == 1))
        surrogate_times = stats["perf_counter_diff"].values[phase == 1]
        summary["draw_time"] = float(surrogate_times.mean()) if surrogate_times.size else np.nan
        summary["switch_iterations"] = switch_iterations(idata)
        second_stage = stats["second_stage_acceptance"].values[phase == 1]
        second_stage = second_stage[np.isfinite(second_stage)]
        summary["second_stage"] = float(second_stage.mean()) if second_stage.size else np.nan
    else:
        summary["grad_evals"] = int(stat_total(idata, "n_steps")) + iterations(idata)
        summary["logp_evals"] = 0
    return summary


def switch_iterations(idata) -> list[int | None]:
    phase = group(idata, "warmup_sample_stats")["phase"].values
    first = []
    for chain in phase:
        switched = np.flatnonzero(chain == 1)
        first.append(int(switched[0]) if switched.size else None)
    return first


def mean_call_time(function, x: np.ndarray) -> float:
    function(x)
    start = time.perf_counter()
    for _ in range(TIMING_CALLS):
        function(x)
    return (time.perf_counter() - start) / TIMING_CALLS


def exact_costs(model: pm.Model) -> dict[str, float]:
    point = model.initial_point()
    costs = {}
    for label, compute_grads in (("logp", False), ("logp_dlogp", True)):
        function = model.logp_dlogp_function(ravel_inputs=True, compute_grads=compute_grads)
        x = np.concatenate([np.ravel(point[v.name]) for v in function._grad_vars])
        costs[label] = mean_call_time(function._pytensor_function, x)
    return costs


def row(label: str, values) -> str:
    return f"| {label} | " + " | ".join(values) + " |"


def sampler_table(summaries: dict[str, dict]) -> list[str]:
    runs = list(summaries.values())
    nuts = summaries["nuts"]

    def line(label, fmt, key=None):
        return row(label, [fmt(s) if key is None or key in s else "-" for s in runs])

    lines = [
        "| | " + " | ".join(SAMPLERS[name][0] for name in summaries) + " |",
        "|---|" + "---:|" * len(runs),
        line("wall time (s)", lambda s: f"{s['wall_time']:.1f}"),
        line("min bulk ESS", lambda s: f"{s['min_bulk_ess']:.0f}"),
        line("min tail ESS", lambda s: f"{s['min_tail_ess']:.0f}"),
        line("ESS/s (min bulk)", lambda s: f"{s['ess_per_s']:.2f}"),
        line("ESS/s ratio to NUTS", lambda s: f"{s['ess_per_s'] / nuts['ess_per_s']:.2f}"),
        line("exact gradient evals", lambda s: f"{s['grad_evals']:,}"),
        line("exact logp evals", lambda s: f"{s['logp_evals']:,}"),
        line("mean acceptance", lambda s: f"{s['acceptance']:.3f}"),
        line("second-stage acceptance", lambda s: f"{s['second_stage']:.3f}", "second_stage"),
        line("mean time per draw (ms)", lambda s: f"{1e3 * s['draw_time']:.2f}"),
        line("time in steps, tuning (s)", lambda s: f"{s['tune_step_time']:.1f}"),
        line("time in steps, draws (s)", lambda s: f"{s['draw_step_time']:.1f}"),
    ]
    lines += [
        line(f"mean {name}", lambda s, n=name: f"{s['means'][n]:.4f}") for name in nuts["means"]
    ]
    return lines


def parameter_table(nuts: dict, surrogate: dict, label: str) -> tuple[list[str], float]:
    lines = [
        f"| parameter | mean NUTS | mean {label} | MCSE NUTS | MCSE {label} "
        f"| bulk ESS NUTS | bulk ESS {label} | \\|diff\\| / MCSE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    largest = 0.0
    for name, nuts_mean in nuts["means"].items():
        mean, mcse_n, mcse_s = surrogate["means"][name], nuts["mcse"][name], surrogate["mcse"][name]
        z = abs(mean - nuts_mean) / np.hypot(mcse_n, mcse_s)
        largest = max(largest, z)
        values = [nuts_mean, mean, mcse_n, mcse_s]
        ess = [nuts["bulk_ess"][name], surrogate["bulk_ess"][name]]
        lines.append(
            row(name, [f"{v:.4f}" for v in values] + [f"{e:.0f}" for e in ess] + [f"{z:.2f}"])
        )
    return lines, largest


def logp_criteria(nuts: dict, logp: dict, largest: float, costs: dict[str, float]) -> list[str]:
    speedup = logp["ess_per_s"] / nuts["ess_per_s"]
    draw_in_logp = logp["draw_time"] / costs["logp"]
    checks = [
        (f"ESS/s >= 8x NUTS: {speedup:.2f}x", speedup >= 8),
        (
            f"second-stage acceptance >= 0.9: {logp['second_stage']:.3f}",
            logp["second_stage"] >= 0.9,
        ),
        (f"posterior means within 3 MCSE of NUTS: max {largest:.2f}", largest <= 3),
        (
            f"surrogate-phase draw <= 1.5 exact logp: {1e3 * logp['draw_time']:.3f} ms "
            f"= {draw_in_logp:.2f} x {1e3 * costs['logp']:.3f} ms",
            draw_in_logp <= 1.5,
        ),
    ]
    return [f"- [{'x' if passed else ' '}] {text}" for text, passed in checks]


def report(args, summaries: dict[str, dict], costs: dict[str, float]) -> str:
    nuts = summaries["nuts"]
    logp_ms, grad_ms = 1e3 * costs["logp"], 1e3 * costs["logp_dlogp"]
    lines = [
        f"## GP regression (Matern 3/2, ARD): n={args.n}, {N_FEATURES} features, "
        f"tune={args.tune}, draws={args.draws}, chains={args.chains}, cores={args.cores}, "
        f"seed={args.seed}, BLAS threads={args.blas_threads or 'all'}, "
        f"PyMC {pm.__version__}, ArviZ {az.__version__}",
        "",
        *sampler_table(summaries),
        "",
        f"- one exact logp: {logp_ms:.3f} ms; one exact logp + gradient: {grad_ms:.3f} ms "
        f"(ratio {costs['logp_dlogp'] / costs['logp']:.2f})",
        "- NUTS gradient evals = sum of n_steps + 1 per iteration (start point), tuning included",
    ]
    for name, summary in summaries.items():
        if name == "nuts":
            continue
        label = SAMPLERS[name][0]
        params, largest = parameter_table(nuts, summary, label)
        draw_ms = 1e3 * summary["draw_time"]
        lines += [
            "",
            f"### {label}",
            "",
            *params,
            "",
            f"- max mean difference in MCSE units: {largest:.2f}",
            f"- surrogate-phase draws: {draw_ms:.3f} ms each = {draw_ms / logp_ms:.2f} exact "
            f"logp, {draw_ms / grad_ms:.2f} exact logp+grad",
            f"- fraction of draws in the surrogate phase: {summary['surrogate_fraction']:.3f}; "
            f"first surrogate tuning iteration per chain: {summary['switch_iterations']}",
        ]
        if name == "logp":
            lines += ["", "Targets (issue 3):", *logp_criteria(nuts, summary, largest, costs)]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    X, y = simulate(args.n)
    model = build_model(X, y)
    summaries = {}
    with threadpool_limits(limits=args.blas_threads or None):
        for name in args.samplers:
            step_kwargs = SAMPLERS[name][1]
            idata, wall_time = timed_sample(model, args, step_kwargs)
            summaries[name] = summarize(idata, wall_time, surrogate=step_kwargs is not None)
        costs = exact_costs(model)
    print(report(args, summaries, costs))


if __name__ == "__main__":
    main()
