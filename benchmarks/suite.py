"""Benchmark suite: ``SurrogateHMC`` against PyMC's NUTS and nutpie on the method papers' models.

For each model of ``benchmarks/models.py`` (GP regression, GARCH(2,1), logistic regression,
banana, ill-conditioned Gaussian, Lotka-Volterra, correlated linear regression, non-centred
hierarchical regression), seed (``--seeds``, 3 by default) and sampler:

- ``nuts``: ``pm.sample(nuts_sampler="pymc")``, the reference;
- ``nutpie``: ``nutpie.compile_pymc_model`` (numba backend) and ``nutpie.sample`` with its
  default diagonal mass matrix adaptation (what ``pm.sample()`` runs on PyMC 6);
- ``nutpie_low_rank``: the same with ``adaptation="low_rank"``, the strongest exact peer;
- ``logp``: ``SurrogateHMC(surrogate="logp", trajectory="nuts")``, NUTS on a log-likelihood
  surrogate with a delayed-acceptance correction by the exact logp;
- ``gradient``: ``SurrogateHMC()``, a gradient surrogate with static trajectories (NNgHMC);
- ``engine``: ``shmc.sample()``, every chain in one compiled program with one shared surrogate
  (or nutpie with its low-rank metric, whole, for a model too cheap for a surrogate).

Every (model, seed, sampler) runs in a fresh Python process (this script with ``--worker``) whose
JAX compilation cache is a new empty directory, so no run loads code compiled by an earlier one;
the whole run is timed, compilation included. All samplers of a model have the same tune, draws
and chains; the order of the samplers is rotated from seed to seed (seed index i starts at
sampler i mod n). Per model and sampler the page reports medians over seeds of wall time, min bulk
ESS and ESS/s, the largest R-hat, the ESS/s ratios to PyMC's NUTS, nutpie and nutpie low-rank of
the same seed (median and min-max over seeds), exact evaluations (counted as ``measure.py``
says), acceptance, the fraction of draws in the surrogate phase, and the largest difference of a
posterior mean from NUTS's in units of their combined MCSE. A failed run gets a row saying why.

Writes ``results.md``, ``results.json`` and ``benchmark_ratios.png``: by default into
``docs/benchmarks/`` and ``docs/_static/`` for the full run, and into a new temporary directory
for ``--quick``; ``--output DIR`` puts all three in ``DIR``. ``--update`` re-runs some models
(``--models``) and replaces only them in the existing ``results.json``; ``--add`` runs only
``--samplers`` on them and adds their runs to those already there.

Run ``nox -s benchmarks`` (full) or ``nox -s benchmarks_quick`` (smoke run with ``--strict``),
or ``python benchmarks/suite.py --quick --models banana gp --samplers nuts logp``.
"""

import argparse
import json
import math
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
from importlib import metadata
from pathlib import Path
from typing import Any

from measure import mean_differences
from models import BENCHMARKS, Benchmark
from report import JSON, PEERS, SAMPLER_LABELS, jsonable, write_outputs

ROOT = Path(__file__).resolve().parent.parent
SURROGATE_OPTIONS = {
    "logp": {"surrogate": "logp", "trajectory": "nuts"},
    "gradient": {"surrogate": "gradient"},
}
NUTPIE_ADAPTATION = {"nutpie": "diag", "nutpie_low_rank": "low_rank"}
KINDS = {"nuts": "nuts", "nutpie": "nutpie", "nutpie_low_rank": "nutpie", "engine": "engine"}
# The gradient surrogate is left out by default to keep the full run's time down.
DEFAULT_SAMPLERS = ["nuts", "nutpie", "nutpie_low_rank", "logp", "engine"]
DEFAULT_SEEDS = [1, 2, 3]
SEEDS_TEXT = " ".join(map(str, DEFAULT_SEEDS))
DEFAULT_CHAINS = 2
# --quick: the models whose smoke run fits CI's few minutes with every sampler in a fresh process.
QUICK_MODELS = ["logistic", "gaussian"]
MAX_RHAT, QUICK_MAX_RHAT = 1.01, 1.05
MAX_MCSE = 4.0  # --strict: largest |mean - NUTS's mean| in units of the combined MCSE
MAX_WARNINGS = 8
SPEC, RECORD = "spec.json", "record.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", choices=list(BENCHMARKS),
        help=f"models to run (default: all; with --quick: {' '.join(QUICK_MODELS)})",
    )  # fmt: skip
    parser.add_argument(
        "--samplers", nargs="+", choices=list(SAMPLER_LABELS),
        help=f"samplers to compare (default: {' '.join(DEFAULT_SAMPLERS)}); PyMC's NUTS always "
        "runs: it is the reference",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run: small sizes, short runs, 1 seed (3 would not fit CI's few minutes) and "
        f"R-hat up to {QUICK_MAX_RHAT} accepted by --strict",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", nargs="+", type=int,
        help=f"random seeds, one run of every sampler each (default: {SEEDS_TEXT}; with "
        "--quick: 1)",
    )  # fmt: skip
    parser.add_argument("--tune", type=int, help="tuning iterations (default: per model)")
    parser.add_argument("--draws", type=int, help="draws per chain (default: per model)")
    parser.add_argument(
        "--chains", type=int,
        help=f"chains per model (default: {DEFAULT_CHAINS}, and the model's own in a full run)",
    )  # fmt: skip
    parser.add_argument("--cores", type=int, default=1)
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
        "--strict", action="store_true",
        help=f"exit with status 1 if any run fails, has an R-hat above {MAX_RHAT} "
        f"({QUICK_MAX_RHAT} with --quick) or a posterior mean more than {MAX_MCSE:g} combined "
        "MCSE from PyMC NUTS's of the same seed",
    )  # fmt: skip
    parser.add_argument(
        "--update", action="store_true",
        help="replace only the models run now in the output directory's results.json (which "
        "must have the same settings)",
    )  # fmt: skip
    parser.add_argument(
        "--add", action="store_true",
        help="run only --samplers (not PyMC's NUTS) on --models and add their runs to the output "
        "directory's results.json (same settings), with their ratios to the runs there",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.models = args.models or (QUICK_MODELS if args.quick else list(BENCHMARKS))
    if args.add:
        if not args.samplers or "nuts" in args.samplers:
            parser.error("--add needs --samplers, without nuts (the reference already there)")
        args.update = True
    else:
        chosen = args.samplers or DEFAULT_SAMPLERS
        args.samplers = ["nuts", *(s for s in SAMPLER_LABELS if s in chosen and s != "nuts")]
    args.seeds = args.seeds or ([1] if args.quick else DEFAULT_SEEDS)
    args.max_rhat = QUICK_MAX_RHAT if args.quick else MAX_RHAT
    if args.docs and args.output is not None:
        parser.error("--docs and --output are exclusive")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must be distinct")
    if args.strict and args.chains is not None and args.chains < 2:
        parser.error("--strict checks R-hat, which needs at least 2 chains")
    return args


# -- one run, in a fresh process -----------------------------------------------------------------


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


def run_sampler(model, sampler: str, kwargs: dict):
    """One timed run (compilation included): the trace and the wall time in seconds."""
    from measure import timed_nutpie_sample, timed_pymc_sample

    import surrogate_hmc as shmc

    if sampler == "nuts":
        return timed_pymc_sample(model, None, **kwargs)
    if sampler in NUTPIE_ADAPTATION:
        return timed_nutpie_sample(
            model,
            tune=kwargs["tune"],
            draws=kwargs["draws"],
            chains=kwargs["chains"],
            cores=kwargs["cores"],
            seed=kwargs["random_seed"],
            adaptation=NUTPIE_ADAPTATION[sampler],
        )
    if sampler == "engine":
        with model:
            start = time.perf_counter()
            idata = shmc.sample(
                draws=kwargs["draws"], tune=kwargs["tune"], chains=kwargs["chains"],
                random_seed=kwargs["random_seed"], progressbar=False,
            )  # fmt: skip
            return idata, time.perf_counter() - start
    options = SURROGATE_OPTIONS[sampler]
    return timed_pymc_sample(model, lambda: shmc.SurrogateHMC(**options), **kwargs)


def check_cold_cache() -> str:
    """JAX's compilation cache, after checking it is the fresh one we made and holds no entry.

    Importing the package leaves the cache's lock file in it; nothing compiled may be there.
    """
    import jax

    import surrogate_hmc  # noqa: F401  (points JAX's cache to $SURROGATE_HMC_CACHE_DIR)

    directory = jax.config.jax_compilation_cache_dir
    expected = os.environ["SURROGATE_HMC_CACHE_DIR"]
    entries = [path for path in Path(expected).iterdir() if path.name != ".lockfile"]
    if directory not in (None, expected) or entries:
        raise RuntimeError(f"JAX's compilation cache is {directory!r}, not the empty {expected!r}")
    return directory or "disabled"


def worker(directory: Path) -> int:
    """Build the model of ``directory/spec.json``, run its sampler, write ``record.json``."""
    from measure import exact_costs, sample_kwargs, summarize
    from threadpoolctl import threadpool_limits

    spec = json.loads((directory / SPEC).read_text())
    sampler = spec["sampler"]
    record: dict[str, Any] = {"label": SAMPLER_LABELS[sampler], "jax_cache": check_cold_cache()}
    kwargs = sample_kwargs(
        tune=spec["tune"],
        draws=spec["draws"],
        chains=spec["chains"],
        cores=spec["cores"],
        seed=spec["seed"],
    )
    with threadpool_limits(limits=spec["blas_threads"] or None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # building an ODE model warns about PyTensor internals
            model = BENCHMARKS[spec["model"]].build(**spec["size"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                idata, wall_time = run_sampler(model, sampler, kwargs)
                record["summary"] = summarize(idata, wall_time, KINDS.get(sampler, "surrogate"))
                record["status"] = "ok"
            except Exception as error:  # a benchmark row, not a crash of the whole suite
                record["status"] = "failed"
                message = str(error).strip().splitlines()
                record["error"] = f"{type(error).__name__}: {message[0] if message else ''}"[:400]
                traceback.print_exc()
        record["warnings"] = warning_lines(caught)
        record["load_average"] = os.getloadavg()[0]
        if spec["costs"]:  # after the timed run: it does not slow it down
            record["costs"] = exact_costs(model)
    (directory / RECORD).write_text(json.dumps(jsonable(record)))
    return 0


def run_isolated(spec: dict) -> dict[str, Any]:
    """Run one (model, seed, sampler) in a fresh process with an empty JAX compilation cache."""
    with tempfile.TemporaryDirectory(prefix="shmc-run-") as name:
        directory = Path(name)
        (directory / SPEC).write_text(json.dumps(spec))
        cache = directory / "jax-cache"
        cache.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        env["SURROGATE_HMC_CACHE_DIR"] = str(cache)
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(directory)]
        process = subprocess.run(command, env=env, capture_output=True, text=True)
        if (directory / RECORD).exists():
            record = json.loads((directory / RECORD).read_text())
        else:
            lines = [line for line in process.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else "no output"
            record = {
                "label": SAMPLER_LABELS[spec["sampler"]],
                "status": "failed",
                "error": f"worker exited with status {process.returncode}: {reason}"[:400],
                "warnings": [],
                "load_average": os.getloadavg()[0],
            }
    if record["status"] != "ok":
        print(process.stderr[-4000:], file=sys.stderr, flush=True)
    return record


# -- one model: every seed and sampler -----------------------------------------------------------


def rotated(samplers: list[str], index: int) -> list[str]:
    """The order of the samplers for the seed of this index: it starts at sampler index mod n."""
    start = index % len(samplers)
    return samplers[start:] + samplers[:start]


def compare(result: dict) -> None:
    """Add the ESS/s ratios to the peers and the largest mean difference to NUTS of each seed."""
    for seed in map(str, result["seeds"]):
        summaries = {
            sampler: runs[seed]["summary"]
            for sampler, runs in result["runs"].items()
            if runs.get(seed, {}).get("status") == "ok"
        }
        for sampler, summary in summaries.items():
            summary["ratios"] = {
                peer: summary["ess_per_s"] / summaries[peer]["ess_per_s"]
                for peer in PEERS
                if peer in summaries and peer != sampler
            }
            if sampler != "nuts" and "nuts" in summaries:
                differences = mean_differences(summaries["nuts"], summary)
                worst = max(differences, key=differences.__getitem__)
                summary["max_difference"] = differences[worst]
                summary["max_difference_parameter"] = worst


def run_spec(result: dict, seed: int, sampler: str, position: int, common: dict) -> None:
    """One (seed, sampler) of a model in a fresh process, into ``result["runs"]``."""
    key = result["key"]
    costs = result["costs"] is None and sampler == "nuts"
    spec = common | {"model": key, "sampler": sampler, "seed": seed, "costs": costs}
    record = run_isolated(spec) | {"position": position}
    result["costs"] = record.pop("costs", result["costs"])
    result["runs"].setdefault(sampler, {})[str(seed)] = record
    summary = record.get("summary")
    status = (
        f"{summary['wall_time']:.1f} s, min bulk ESS {summary['min_bulk_ess']:.0f}, "
        f"R-hat {summary['rhat_max'] or math.nan:.3f}"
        if summary
        else f"FAILED ({record['error']})"
    )
    print(f"[{key} seed {seed}] {record['label']}: {status}", flush=True)


def add_samplers(result: dict, samplers: list[str], cores: int, blas_threads: int) -> dict:
    """A model's earlier ``result`` with the runs of ``samplers`` added (after the others)."""
    common = {key: result[key] for key in ("size", "tune", "draws", "chains")}
    common |= {"cores": cores, "blas_threads": blas_threads}
    for seed in result["seeds"]:
        order = [s for s in result["orders"][str(seed)] if s not in samplers]
        for sampler in samplers:
            run_spec(result, seed, sampler, len(order), common)
            order.append(sampler)
        result["orders"][str(seed)] = order
    compare(result)
    return result


def run_benchmark(
    key: str,
    size: dict[str, Any],
    *,
    tune: int,
    draws: int,
    chains: int,
    cores: int,
    seeds: list[int],
    samplers: list[str],
    blas_threads: int,
) -> dict[str, Any]:
    """Every seed and sampler of one model, each run in a fresh process, with the comparisons."""
    result: dict[str, Any] = {
        "key": key,
        "title": BENCHMARKS[key].title,
        "size": size,
        "tune": tune,
        "draws": draws,
        "chains": chains,
        "seeds": seeds,
        "orders": {},
        "costs": None,
        "runs": {sampler: {} for sampler in samplers},
    }
    common = {"size": size, "tune": tune, "draws": draws, "chains": chains}
    common |= {"cores": cores, "blas_threads": blas_threads}
    for index, seed in enumerate(seeds):
        order = rotated(samplers, index)
        result["orders"][str(seed)] = order
        for position, sampler in enumerate(order):
            run_spec(result, seed, sampler, position, common)
    compare(result)
    return result


def problems(results: list[dict], max_rhat: float) -> list[str]:
    """What makes ``--strict`` fail: failed runs, R-hat above ``max_rhat``, means off NUTS's."""
    found = []
    for result in results:
        for sampler, runs in result["runs"].items():
            for seed, record in runs.items():
                where = f"{result['key']}/{sampler}/seed {seed}"
                if record["status"] != "ok":
                    found.append(f"{where}: failed: {record['error']}")
                    continue
                summary = record["summary"]
                rhat = summary["rhat_max"]  # None (JSON's NaN) with one chain
                if rhat is None or rhat > max_rhat:
                    found.append(f"{where}: R-hat {rhat or math.nan:.3f}, not <= {max_rhat}")
                if summary.get("max_difference", 0.0) > MAX_MCSE:
                    found.append(
                        f"{where}: mean of {summary['max_difference_parameter']} is "
                        f"{summary['max_difference']:.1f} MCSE from PyMC NUTS's (> {MAX_MCSE:g})"
                    )
    return found


# -- the suite -----------------------------------------------------------------------------------


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


def chains_of(benchmark: Benchmark, args: argparse.Namespace) -> int:
    """Chains of one model: the command line's, or the model's own in a full run."""
    own = None if args.quick else benchmark.chains
    return args.chains or own or DEFAULT_CHAINS


def run_model(key: str, args: argparse.Namespace) -> dict[str, Any]:
    benchmark = BENCHMARKS[key]
    tune, draws = run_length(benchmark, args)
    result = run_benchmark(
        key,
        benchmark.quick_size if args.quick else benchmark.size,
        tune=tune,
        draws=draws,
        chains=chains_of(benchmark, args),
        cores=args.cores,
        seeds=args.seeds,
        samplers=args.samplers,
        blas_threads=args.blas_threads,
    )
    own_length = not (args.quick or args.tune or args.draws or args.chains)
    result["notes"] = benchmark.notes if own_length else ""
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
    """Versions of what the workers run (read from the installed metadata: no import)."""
    names = {"PyMC": "pymc", "PyTensor": "pytensor", "nutpie": "nutpie", "JAX": "jax"}
    names |= {"ArviZ": "arviz", "NumPy": "numpy", "surrogate-hmc": "surrogate-hmc"}
    found = {"Python": platform.python_version()}
    for label, name in names.items():
        try:
            found[label] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[label] = "not installed"
    return found


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
            "chains": args.chains or (DEFAULT_CHAINS if args.quick else "per model"),
            "cores": args.cores,
            "seeds": args.seeds,
            "blas_threads": args.blas_threads or "no limit",
            "quick": args.quick,
            "max_rhat": args.max_rhat,
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
    if meta.get("added"):
        update["added"] = meta["added"]
    new_meta = previous["meta"] | {"updates": [*previous["meta"].get("updates", []), update]}
    by_key = {r["key"]: r for r in previous["results"]} | {r["key"]: r for r in results}
    return new_meta, [by_key[key] for key in BENCHMARKS if key in by_key]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(Path(argv[1]))
    args = parse_args(argv)
    markdown_dir, figure_dir = output_paths(args)
    meta = run_meta(args, f"python benchmarks/suite.py {shlex.join(argv)}".strip())
    previous = previous_results(args, markdown_dir, meta)
    if args.add:
        meta["added"] = [SAMPLER_LABELS[s] for s in args.samplers]
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    earlier = {r["key"]: r for r in previous["results"]} if previous else {}
    missing = [key for key in args.models if key not in earlier]
    if args.add and missing:
        raise SystemExit(f"--add: {', '.join(missing)} have no earlier results to add to")
    for key in args.models:
        results.append(
            add_samplers(earlier[key], args.samplers, args.cores, args.blas_threads)
            if args.add
            else run_model(key, args)
        )
        # After every model, so that an interrupted run leaves what it measured.
        meta["total_minutes"] = (time.perf_counter() - start) / 60
        meta["load_average_end"] = os.getloadavg()
        meta["models_missing"] = args.models[len(results) :]
        paths = write_outputs(*merged(previous, meta, results), markdown_dir, figure_dir)
    print("\nwrote " + ", ".join(str(p) for p in paths))
    found = problems(results, args.max_rhat)
    for problem in found:
        print(f"PROBLEM {problem}", file=sys.stderr)
    return 1 if found and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
