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

import arviz as az
import pymc as pm
from measure import exact_costs, parameter_table, row, sample_kwargs, summarize, timed_pymc_sample
from models import GP_FEATURES as N_FEATURES
from models import gp_regression
from threadpoolctl import threadpool_limits

import surrogate_hmc as shmc

SAMPLERS = {
    "nuts": ("PyMC NUTS", None),
    "gradient": ("SurrogateHMC gradient/static", {"surrogate": "gradient"}),
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
    model = gp_regression(n=args.n)
    kwargs = sample_kwargs(
        tune=args.tune, draws=args.draws, chains=args.chains, cores=args.cores, seed=args.seed
    )
    summaries = {}
    with threadpool_limits(limits=args.blas_threads or None):
        for name in args.samplers:
            step_kwargs = SAMPLERS[name][1]
            if step_kwargs is None:
                idata, wall_time = timed_pymc_sample(model, None, **kwargs)
                summaries[name] = summarize(idata, wall_time, "nuts")
            else:
                factory = lambda k=step_kwargs: shmc.SurrogateHMC(**k)  # noqa: E731
                idata, wall_time = timed_pymc_sample(model, factory, **kwargs)
                summaries[name] = summarize(idata, wall_time, "surrogate")
        costs = exact_costs(model)
    print(report(args, summaries, costs))


if __name__ == "__main__":
    main()
