"""Benchmark suite: ``SurrogateHMC`` against PyMC's NUTS and nutpie on the method papers' models.

For each model of ``benchmarks/models.py`` (GP regression, GARCH(2,1), logistic regression,
banana, ill-conditioned Gaussian, Lotka-Volterra, correlated linear regression, non-centred
hierarchical regression), every sampler runs in this one process with the same tune, draws,
chains and seed, and each whole run is timed, compilation included:

- ``nuts``: ``pm.sample(nuts_sampler="pymc")``, the reference;
- ``nutpie``: ``nutpie.compile_pymc_model`` (numba backend) and ``nutpie.sample``;
- ``logp``: ``SurrogateHMC(surrogate="logp", trajectory="nuts")``, NUTS on a log-likelihood
  surrogate with a delayed-acceptance correction by the exact logp;
- ``gradient``: ``SurrogateHMC()``, a gradient surrogate with static trajectories (NNgHMC).

Per model and sampler it reports wall time, min bulk and tail ESS, ESS/s and its ratio to PyMC's
NUTS, exact gradient and logp evaluations (counted as ``measure.py`` says), acceptance, the
fraction of draws in the surrogate phase, and the largest difference of a posterior mean from
NUTS's in units of their combined MCSE. A sampler that fails on a model gets a row saying why.

Writes ``results.md``, ``results.json`` and ``benchmark_ratios.png``: by default into
``docs/benchmarks/`` and ``docs/_static/`` for the full run, and into a new temporary directory
for ``--quick``; ``--output DIR`` puts all three in ``DIR``. ``--update`` re-runs some models
(``--models``) and replaces only them in the existing ``results.json``; the page says which
models were re-run, when and how.

Run ``nox -s benchmarks`` (full) or ``nox -s benchmarks_quick`` (smoke run, fails when a sampler
fails), or ``python benchmarks/suite.py --quick --models banana gp --samplers nuts logp``.
"""

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pymc as pm
import pytensor
from measure import (
    exact_costs,
    mean_differences,
    sample_kwargs,
    summarize,
    timed_nutpie_sample,
    timed_pymc_sample,
)
from models import BENCHMARKS, Benchmark
from report import JSON, SAMPLER_LABELS, write_outputs
from threadpoolctl import threadpool_limits

import surrogate_hmc as shmc

ROOT = Path(__file__).resolve().parent.parent
SURROGATE_OPTIONS = {
    "logp": {"surrogate": "logp", "trajectory": "nuts"},
    "gradient": {"surrogate": "gradient"},
}
# The gradient surrogate is left out by default to keep the full run within about 40 minutes.
DEFAULT_SAMPLERS = ["nuts", "nutpie", "logp"]
DEFAULT_CHAINS = 2
MAX_WARNINGS = 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS),
        help="models to run (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--samplers", nargs="+", choices=list(SAMPLER_LABELS),
        help="samplers to compare (default: nuts nutpie logp); PyMC's NUTS always runs: it is "
        "the reference",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, short runs")
    parser.add_argument("--tune", type=int, help="tuning iterations (default: per model)")
    parser.add_argument("--draws", type=int, help="draws per chain (default: per model)")
    parser.add_argument(
        "--chains", type=int,
        help=f"chains per model (default: {DEFAULT_CHAINS}, and the model's own in a full run)",
    )  # fmt: skip
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="BLAS threads per process (0: no limit)"
    )
    parser.add_argument(
        "--output", type=Path,
        help="directory for results.md, results.json and benchmark_ratios.png (default: docs/ "
        "for the full run, a new temporary directory for --quick)",
    )  # fmt: skip
    parser.add_argument("--docs", action="store_true", help="write into docs/ even with --quick")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 if any sampler fails"
    )
    parser.add_argument(
        "--update", action="store_true",
        help="replace only the models run now in the output directory's results.json (which "
        "must have the same chains, cores, seed, BLAS threads and --quick)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.samplers is None:
        args.samplers = DEFAULT_SAMPLERS
    args.samplers = ["nuts", *(s for s in SAMPLER_LABELS if s in args.samplers and s != "nuts")]
    if args.docs and args.output is not None:
        parser.error("--docs and --output are exclusive")
    return args


def output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """Where the markdown (and JSON) and the figure go."""
    if args.output is None and (args.docs or not args.quick):
        return ROOT / "docs" / "benchmarks", ROOT / "docs" / "_static"
    directory = args.output or Path(tempfile.mkdtemp(prefix="shmc-benchmarks-"))
    return directory, directory


def run_length(benchmark: Benchmark, args: argparse.Namespace) -> tuple[int, int]:
    """Tune and draws of one model: the command line's, or the model's own."""
    if args.quick:
        tune, draws = benchmark.quick_tune, benchmark.quick_draws
    else:
        tune, draws = benchmark.tune or 1000, benchmark.draws or 1000
    return args.tune or tune, args.draws or draws


def run_sampler(model: pm.Model, sampler: str, kwargs: dict) -> tuple[Any, float]:
    if sampler == "nuts":
        return timed_pymc_sample(model, None, **kwargs)
    if sampler == "nutpie":
        return timed_nutpie_sample(
            model,
            tune=kwargs["tune"],
            draws=kwargs["draws"],
            chains=kwargs["chains"],
            cores=kwargs["cores"],
            seed=kwargs["random_seed"],
        )
    options = SURROGATE_OPTIONS[sampler]
    return timed_pymc_sample(model, lambda: shmc.SurrogateHMC(**options), **kwargs)


def warning_lines(caught: list[warnings.WarningMessage]) -> list[str]:
    """Distinct warnings of one run, ``Category: first line`` (at most ``MAX_WARNINGS``)."""
    lines: list[str] = []
    for message in caught:
        first = str(message.message).strip().splitlines()[0] if str(message.message) else ""
        line = f"{message.category.__name__}: {first[:240]}"
        if line not in lines:
            lines.append(line)
    if len(lines) > MAX_WARNINGS:
        lines = [*lines[:MAX_WARNINGS], f"... and {len(lines) - MAX_WARNINGS} more"]
    return lines


def run_one(model: pm.Model, sampler: str, kwargs: dict) -> dict[str, Any]:
    """One timed run; a failure is recorded (with its reason), not raised."""
    record: dict[str, Any] = {"label": SAMPLER_LABELS[sampler]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            idata, wall_time = run_sampler(model, sampler, kwargs)
            kind = {"nuts": "nuts", "nutpie": "nutpie"}.get(sampler, "surrogate")
            record["summary"] = summarize(idata, wall_time, kind)
            record["status"] = "ok"
        except Exception as error:  # a benchmark row, not a crash of the whole suite
            record["status"] = "failed"
            message = str(error).strip().splitlines()
            record["error"] = f"{type(error).__name__}: {message[0] if message else ''}"[:400]
            print(traceback.format_exc(), file=sys.stderr, flush=True)
    record["warnings"] = warning_lines(caught)
    record["load_average"] = os.getloadavg()[0]
    return record


def compare_to_nuts(runs: dict[str, dict]) -> None:
    """Add the ESS/s ratio and the largest mean difference to NUTS to every successful run."""
    nuts = runs.get("nuts", {}).get("summary")
    for record in runs.values():
        summary = record.get("summary")
        if summary is None or nuts is None:
            continue
        summary["ratio"] = summary["ess_per_s"] / nuts["ess_per_s"]
        if record is runs["nuts"]:
            continue
        differences = mean_differences(nuts, summary)
        worst = max(differences, key=differences.__getitem__)
        summary["max_difference"] = differences[worst]
        summary["max_difference_parameter"] = worst


def chains_of(benchmark: Benchmark, args: argparse.Namespace) -> int:
    """Chains of one model: the command line's, or the model's own in a full run."""
    own = None if args.quick else benchmark.chains
    return args.chains or own or DEFAULT_CHAINS


def run_model(key: str, args: argparse.Namespace) -> dict[str, Any]:
    benchmark = BENCHMARKS[key]
    size = benchmark.quick_size if args.quick else benchmark.size
    tune, draws = run_length(benchmark, args)
    chains = chains_of(benchmark, args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # building an ODE model warns about PyTensor internals
        model = benchmark.build(**size)
        costs = exact_costs(model)
    kwargs = sample_kwargs(tune=tune, draws=draws, chains=chains, cores=args.cores, seed=args.seed)
    result: dict[str, Any] = {
        "key": key,
        "title": benchmark.title,
        "size": size,
        "tune": tune,
        "draws": draws,
        "chains": chains,
        "notes": "" if args.quick or args.tune or args.draws or args.chains else benchmark.notes,
        "costs": costs,
        "runs": {},
    }
    for sampler in args.samplers:
        record = run_one(model, sampler, kwargs)
        result["runs"][sampler] = record
        summary = record.get("summary")
        status = (
            f"{summary['wall_time']:.1f} s, min bulk ESS {summary['min_bulk_ess']:.0f}"
            if summary
            else f"FAILED ({record['error']})"
        )
        print(f"[{key}] {record['label']}: {status}", flush=True)
    compare_to_nuts(result["runs"])
    return result


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "benchmarks", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    if not commit:
        return "unknown"
    return f"{commit}, with uncommitted changes in benchmarks/ or src/" if dirty else commit


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    import jax
    import nutpie

    return {
        "Python": platform.python_version(),
        "PyMC": pm.__version__,
        "PyTensor": pytensor.__version__,
        "nutpie": nutpie.__version__,
        "JAX": jax.__version__,
        "ArviZ": az.__version__,
        "NumPy": np.__version__,
        "surrogate-hmc": shmc.__version__,
    }


def run_meta(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Date, command, commit, machine, load, versions and settings of this run."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "commit": git_commit(),
        "machine": f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.platform()}",
        "load_average_start": os.getloadavg(),
        "versions": versions(),
        "settings": {
            "chains": args.chains or "per model",
            "cores": args.cores,
            "seed": args.seed,
            "blas_threads": args.blas_threads or "no limit",
            "quick": args.quick,
        },
    }


def previous_results(args: argparse.Namespace, markdown_dir: Path, meta: dict) -> dict | None:
    """With ``--update``, the results already in the output directory (same settings)."""
    if not args.update:
        return None
    path = markdown_dir / JSON
    if not path.exists():
        raise SystemExit(f"--update: there is no {path} to update")
    previous = json.loads(path.read_text())
    if previous["meta"]["settings"] != meta["settings"]:
        raise SystemExit(
            f"--update: {path} has other settings ({previous['meta']['settings']}) than this "
            f"run ({meta['settings']}); run the whole suite instead"
        )
    return previous


def merged(previous: dict | None, meta: dict, results: list[dict]) -> tuple[dict, list[dict]]:
    """The page's metadata and results: this run's, or the previous ones with models replaced."""
    if previous is None:
        return meta, results
    update = {key: meta[key] for key in ("date", "command", "commit", "total_minutes")}
    update |= {"models": [r["key"] for r in results], "versions": meta["versions"]}
    update |= {key: meta[key] for key in ("load_average_start", "load_average_end")}
    new_meta = previous["meta"] | {"updates": [*previous["meta"].get("updates", []), update]}
    by_key = {r["key"]: r for r in previous["results"]} | {r["key"]: r for r in results}
    return new_meta, [by_key[key] for key in BENCHMARKS if key in by_key]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    markdown_dir, figure_dir = output_paths(args)
    command = "python benchmarks/suite.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    meta = run_meta(args, command.strip())
    previous = previous_results(args, markdown_dir, meta)
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    with threadpool_limits(limits=args.blas_threads or None):
        for key in args.models:
            results.append(run_model(key, args))
            # After every model, so that an interrupted run leaves what it measured.
            meta["total_minutes"] = (time.perf_counter() - start) / 60
            meta["load_average_end"] = os.getloadavg()
            meta["models_missing"] = args.models[len(results) :]
            paths = write_outputs(*merged(previous, meta, results), markdown_dir, figure_dir)
    print("\nwrote " + ", ".join(str(p) for p in paths))
    failures = [
        f"{result['key']}/{sampler}: {record['error']}"
        for result in results
        for sampler, record in result["runs"].items()
        if record["status"] != "ok"
    ]
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
