"""The benchmark suite's outputs: a markdown page, the results as JSON, and the ESS/s figure.

``python benchmarks/report.py results.json [--output DIR] [--figure-dir DIR]`` redraws the page
and the figure from a saved ``results.json`` without sampling again (for the docs:
``python benchmarks/report.py docs/benchmarks/results.json --figure-dir docs/_static``).
"""

import argparse
import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

SAMPLER_LABELS = {
    "nuts": "PyMC NUTS",
    "nutpie": "nutpie diag",
    "nutpie_low_rank": "nutpie low-rank",
    "logp": "SurrogateHMC logp/NUTS",
    "gradient": "SurrogateHMC gradient/static",
    "engine": "shmc.sample",
}
PEERS = ("nuts", "nutpie", "nutpie_low_rank")  # the exact samplers every ratio is taken to
SURROGATES = ("logp", "gradient", "engine")
COLORS = {"nutpie": "#bbbbbb", "nutpie_low_rank": "#666666", "logp": "#1f77b4"}
COLORS |= {"gradient": "#ff7f0e", "engine": "#2ca02c"}
TICKS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]  # the figure's
MARKDOWN, JSON, FIGURE = "results.md", "results.json", "benchmark_ratios.png"
# Warnings kept in results.json but left off the page: numba saying that it cannot cache
# PyTensor's compiled graph on disk has no bearing on the runs.
EN_DASH = "\u2013"  # between min and max
NOT_REPORTED = ("NumbaWarning: Cannot cache compiled function",)

COUNTING = """\
- **Isolation**: every (model, seed, sampler) ran in its own fresh Python process, with JAX's
  compilation cache pointed to a new empty directory (`SURROGATE_HMC_CACHE_DIR`), so
  `SurrogateHMC` compiled all its JAX code in every run, as on its first run on a machine.
  PyTensor's own cache of compiled code (used by every sampler for the model's logp and
  gradient) was left as it was, warm after the first run of a model: that favours the exact
  samplers. The samplers' order was rotated from seed to seed (in each model's section).
- **Wall time** is the whole run: `pm.sample` for PyMC's NUTS and `SurrogateHMC` (compilation,
  tuning, the exact phase and the training included), and `nutpie.compile_pymc_model` plus
  `nutpie.sample` for nutpie. ESS/s is the minimum bulk ESS over all parameters divided by it.
  Wall time, ESS and ESS/s are medians over the seeds.
- **ESS/s ratios** are taken between runs of the same seed: median [min-max] over the seeds.
  nutpie is nutpie's default (diagonal mass matrix adapted from draws and gradients), what
  `pm.sample()` runs on PyMC 6 when nutpie is installed; nutpie low-rank adapts a low-rank
  modified mass matrix (`adaptation="low_rank"`), the strongest exact peer here.
- **One-logp limit** (on the surrogate samplers' rows): the ESS/s ratio to nutpie low-rank
  that a sampler would reach if every effective draw cost it one exact logp and nothing else:
  nutpie low-rank's exact seconds per effective draw (its gradient evaluations times one
  logp+gradient, over its min bulk ESS) divided by one exact logp's seconds (median over
  seeds). A surrogate sampler passes it only with more than one effective draw per exact
  logp: antithetic draws, or several surrogate transitions per exact correction.
- **R-hat** is the largest rank-normalized R-hat over all parameters and seeds.
- **Exact evaluations** cover tuning and draws of all chains (median over seeds). PyMC's NUTS:
  the sum of `n_steps` (one logp+gradient per leapfrog step) plus one per iteration (the start of
  each trajectory). nutpie: the sum of its `n_steps` plus one per chain (it keeps the gradient of
  the current point). `SurrogateHMC`: the sums of its `n_exact_grad` and `n_exact_logp` stats (a
  logp without gradient costs less: the cost of each is in the model's section).
- **Acceptance**: mean `acceptance_rate` (nutpie: `mean_tree_accept`) over the draws; for the
  logp surrogate also the mean second-stage (exact correction) acceptance of its
  surrogate-phase draws (medians over seeds).
- **Surrogate draws**: the fraction of draws made in the surrogate phase (0 %: the surrogate
  never passed its switch test and the chain stayed on exact NUTS).
- **max |Δmean| / MCSE**: the largest difference between a posterior mean and PyMC NUTS's of the
  same seed, over all parameters and seeds, in units of their combined Monte Carlo standard error
  (`sqrt(MCSE_NUTS^2 + MCSE^2)`); about 3 or less is what two exact samplers give.
- **Load**: the 1-minute load average at the end of the runs (median over seeds).
"""


def _fmt(value: Any, spec: str, missing: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, spec)


def _three_digits(value: float) -> str:
    """About three significant digits, without switching to exponents or dropping zeros."""
    for limit, spec in ((100, ".0f"), (10, ".1f"), (1, ".2f")):
        if abs(value) >= limit:
            return format(value, spec)
    return format(value, ".3g")


def _escape(text: str) -> str:
    """A message as text for a table cell or a code span: no pipes, newlines or backticks."""
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


def _median_of(summaries: list[dict], key: str) -> float | None:
    """Median of one entry of the summaries (``None`` if none has it)."""
    return _median([s.get(key) for s in summaries])


def ratio_range(summaries: list[dict], peer: str) -> tuple[float, float, float] | None:
    """Median, min and max over seeds of the ESS/s ratio to ``peer`` (``None``: no ratio)."""
    ratios = [s["ratios"][peer] for s in summaries if peer in s.get("ratios", {})]
    if not ratios:
        return None
    return statistics.median(ratios), min(ratios), max(ratios)


def _ratio_cell(summaries: list[dict], sampler: str, peer: str) -> str:
    found = ratio_range(summaries, peer)
    if found is None:
        return "-"
    median, low, high = found
    text = _three_digits(median)
    if low != high:
        text += f" [{_three_digits(low)}{EN_DASH}{_three_digits(high)}]"
    return f"**{text}**" if sampler in SURROGATES else text


def successes(result: dict, sampler: str) -> list[dict]:
    """The summaries of a sampler's successful runs on a model, one per seed."""
    return [r["summary"] for r in result["runs"][sampler].values() if r["status"] == "ok"]


def one_logp_limit(result: dict) -> float | None:
    """The ESS/s ratio to nutpie low-rank of a sampler paying one exact logp per effective draw.

    nutpie low-rank's exact seconds per effective draw (its gradient evaluations times one
    logp+gradient's time, over its min bulk ESS) divided by one exact logp's time: median over
    seeds; ``None`` without nutpie low-rank's runs or the model's costs.
    """
    costs = result.get("costs")
    if not costs or not costs.get("logp") or "nutpie_low_rank" not in result["runs"]:
        return None
    return _median(
        [
            s["grad_evals"] * costs["logp_dlogp"] / s["min_bulk_ess"] / costs["logp"]
            for s in successes(result, "nutpie_low_rank")
            if s["min_bulk_ess"] > 0
        ]
    )


def summary_table(results: list[dict]) -> list[str]:
    peers = [p for p in PEERS if any(p in r["runs"] for r in results)]
    lines = [
        "| model | sampler | wall time (s) | min bulk ESS | ESS/s | R-hat max | "
        + " | ".join(f"ESS/s ratio to {SAMPLER_LABELS[p]}" for p in peers)
        + " | one-logp limit | exact grad evals | exact logp evals | acceptance "
        "| surrogate draws | max \\|Δmean\\| / MCSE | load |",
        "|---|---|" + "---:|" * (13 + len(peers) - 2),
    ]
    for result in results:
        for sampler, runs in result["runs"].items():
            records = list(runs.values())
            label = SAMPLER_LABELS[sampler]
            summaries = successes(result, sampler)
            failed = [r for r in records if r["status"] != "ok"]
            if failed:
                label += f" (**{len(failed)} of {len(records)} runs failed**)"
            if not summaries:
                error = _escape(failed[0]["error"])
                cells = [f"failed: {error}", *[""] * (10 + len(peers))]
                lines.append(f"| {result['title']} | {label} | " + " | ".join(cells) + " |")
                continue

            acceptance = _fmt(_median_of(summaries, "acceptance"), ".3f")
            second_stage = _median_of(summaries, "second_stage")
            if second_stage is not None:
                acceptance += f" / {second_stage:.3f}"
            fraction = _median_of(summaries, "surrogate_fraction")
            rhats = [s["rhat_max"] for s in summaries]
            differences = [s["max_difference"] for s in summaries if "max_difference" in s]
            cells = [
                _fmt(_median_of(summaries, "wall_time"), ".1f"),
                f"{_median_of(summaries, 'min_bulk_ess'):.0f}",
                _three_digits(_median_of(summaries, "ess_per_s")),
                "n/a" if None in rhats else f"{max(rhats):.3f}",
                *[_ratio_cell(summaries, sampler, p) for p in peers],
                _fmt(one_logp_limit(result), ".1f") if sampler in SURROGATES else "",
                f"{_median_of(summaries, 'grad_evals'):,.0f}",
                f"{_median_of(summaries, 'logp_evals'):,.0f}",
                acceptance,
                "" if fraction is None else f"{100 * fraction:.0f} %",
                _fmt(max(differences, default=None), ".2f"),
                _fmt(_median([r["load_average"] for r in records]), ".1f"),
            ]
            lines.append(f"| {result['title']} | {label} | " + " | ".join(cells) + " |")
    return lines


def model_section(result: dict) -> list[str]:
    size = ", ".join(f"{key}={value:,}" for key, value in result["size"].items()) or "fixed"
    lines = [
        f"#### {result['title']}",
        "",
        f"- size: {size}; tune={result['tune']}, draws={result['draws']}, "
        f"chains={result['chains']}" + (f" ({result['notes']})" if result.get("notes") else ""),
    ]
    costs = result.get("costs")
    if costs:
        lines.append(
            f"- one exact logp: {1e3 * costs['logp']:.3f} ms; one exact logp + gradient: "
            f"{1e3 * costs['logp_dlogp']:.3f} ms (at the initial point, in PyMC NUTS's process)"
        )
    limit = one_logp_limit(result)
    if limit is not None:
        lines.append(f"- one-logp limit: {limit:.1f}x nutpie low-rank's ESS/s")
    orders = "; ".join(
        f"seed {seed}: " + ", ".join(SAMPLER_LABELS[s] for s in order)
        for seed, order in result["orders"].items()
    )
    lines.append(f"- order of the runs: {orders}")
    for sampler, runs in result["runs"].items():
        lines.append(f"- {SAMPLER_LABELS[sampler]}:")
        warnings: list[str] = []
        for seed, record in runs.items():
            load = f"load average {record['load_average']:.1f}"
            if record["status"] != "ok":
                lines.append(f"  - seed {seed}: **failed**: `{_escape(record['error'])}` ({load})")
            else:
                s = record["summary"]
                parts = [
                    f"{s['wall_time']:.1f} s",
                    f"min bulk / tail ESS {s['min_bulk_ess']:.0f} / {s['min_tail_ess']:.0f}",
                    f"R-hat {_fmt(s['rhat_max'], '.3f', 'n/a')}",
                    f"{s['divergences']} divergent draws",
                ]
                if "max_difference_parameter" in s:
                    parts.append(
                        f"largest mean difference at `{s['max_difference_parameter']}` "
                        f"({s['max_difference']:.2f} MCSE)"
                    )
                if "switch_iterations" in s:
                    parts.append(
                        f"first surrogate tuning iteration per chain {s['switch_iterations']}"
                    )
                if "decision" in s:
                    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in s["seconds"].items())
                    parts.append(f"{s['decision']} ({seconds})")
                if math.isfinite(s.get("draw_time") or math.nan) and s["kind"] == "surrogate":
                    parts.append(f"{1e3 * s['draw_time']:.2f} ms per surrogate-phase draw")
                lines.append(f"  - seed {seed}: " + "; ".join(parts) + f" ({load})")
            warnings += [w for w in record["warnings"] if w not in warnings]
        lines += [
            f"  - warning: `{_escape(w)}`"
            for w in warnings
            if not any(text in w for text in NOT_REPORTED)
        ]
    return [*lines, ""]


def markdown(meta: dict, results: list[dict], figure: str) -> str:
    load_start = ", ".join(f"{x:.1f}" for x in meta["load_average_start"])
    load_end = ", ".join(f"{x:.1f}" for x in meta["load_average_end"])
    settings = meta["settings"]
    # Before the run only others load the machine; at its end one of its runs adds about 1.
    loaded = meta["load_average_start"][0] > 1.0 or meta["load_average_end"][0] > 2.0
    load_note = (
        "The machine was shared with other jobs while this ran, so the wall times (and ESS/s) "
        "are noisier than on an idle machine (the load column says how loaded it was)."
        if loaded
        else "The machine was otherwise idle."
    )
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    chains = settings["chains"]
    chains = f"{chains} chains" if isinstance(chains, int) else "the chains of each model"
    seeds = ", ".join(map(str, settings["seeds"]))
    lines = [
        "## Results",
        "",
        f"**Seeds {seeds}; {chains}; cold compilation cache; each sampler in a fresh process; "
        f"sampler order rotated per seed; command `{meta['command']}`.**",
        "",
        f"Run on {meta['date']} (commit {meta['commit']})"
        f"{', a quick smoke run: small models and short chains' if settings['quick'] else ''}; "
        f"{meta['total_minutes']:.0f} minutes in all.",
        "",
    ]
    for update in meta.get("updates", []):
        lines += [
            f"Re-run on {update['date']} (commit {update['commit']}, load average "
            f"{update['load_average_start'][0]:.1f} at its start) with `{update['command']}`, "
            + (
                f"which added the runs of {', '.join(update['added'])} (after the others of "
                f"each seed) to: {', '.join(update['models'])}."
                if update.get("added")
                else f"which replaced the results of: {', '.join(update['models'])}."
            ),
            "",
        ]
    if meta.get("models_missing"):
        lines += [
            f"**Partial results**: the run stopped before {', '.join(meta['models_missing'])}.",
            "",
        ]
    lines += [
        f"- Machine: {meta['machine']}. Load average (1, 5, 15 min) {load_start} at the start "
        f"and {load_end} at the end. {load_note}",
        f"- Versions: {versions}.",
        f"- Settings: {chains}, cores={settings['cores']}, seeds {seeds}, BLAS threads "
        f"{settings['blas_threads']}; every sampler of a model has the same tune, draws and "
        f"chains (in its section below). `--strict` accepts R-hat up to {settings['max_rhat']}.",
        "",
        f"![Median ESS/s ratio to nutpie low-rank and to PyMC NUTS per model]({figure})",
        "",
        *summary_table(results),
        "",
        "How it is measured:",
        "",
        COUNTING,
        "### Models",
        "",
    ]
    for result in results:
        lines += model_section(result)
    return "\n".join(lines).rstrip() + "\n"


def figure(results: list[dict], path: Path) -> None:
    """Median ESS/s ratio (min-max bars) to nutpie low-rank and to PyMC NUTS, per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    panels = [p for p in ("nutpie_low_rank", "nuts") if any(p in r["runs"] for r in results)]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(7.0, 1.3 * len(results) + 3.5), 3.2 * len(panels) + 0.6),
        layout="constrained", squeeze=False, sharex=True,
    )  # fmt: skip
    shown: list[str] = []
    for ax, peer in zip(axes[:, 0], panels, strict=True):
        samplers = [s for s in COLORS if s != peer and any(s in r["runs"] for r in results)]
        width = 0.8 / max(len(samplers), 1)
        ax.set_yscale("log")
        ax.axhline(1.0, color="black", linewidth=1)
        values = [1.0]
        for i, sampler in enumerate(samplers):
            offset = (i - (len(samplers) - 1) / 2) * width
            for j, result in enumerate(results):
                if sampler not in result["runs"]:
                    continue
                found = ratio_range(successes(result, sampler), peer)
                if found is None:
                    ax.text(j + offset, 1.0, "n/a", rotation=90, ha="center", fontsize=7)
                    continue
                median, low, high = found
                values += [low, high]
                ax.bar(j + offset, median, width, color=COLORS[sampler])
                ax.errorbar(
                    j + offset, median, yerr=[[median - low], [high - median]],
                    color="black", linewidth=0.8, capsize=2,
                )  # fmt: skip
                ax.text(j + offset, high, f"{median:.2g}", ha="center", va="bottom", fontsize=7)
            shown += [s for s in samplers if s not in shown]
        ax.set_ylim(min(values) / 2, max(values) * 2)
        ax.yaxis.set_major_locator(FixedLocator(TICKS))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel(f"ESS/s ratio to\n{SAMPLER_LABELS[peer]}")
    axes[-1, 0].set_xticks(
        range(len(results)), [r["title"] for r in results], rotation=20, ha="right"
    )
    fig.suptitle(
        "ESS per second (min bulk) relative to exact samplers (line at 1)\n"
        "median over seeds, bars from min to max",
        fontsize=10,
    )
    handles = [Patch(color=COLORS[s], label=SAMPLER_LABELS[s]) for s in COLORS if s in shown]
    axes[0, 0].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_outputs(
    meta: dict, results: list[dict], markdown_dir: Path, figure_dir: Path
) -> list[Path]:
    """Write ``results.md``, ``results.json`` and the figure; return their paths."""
    markdown_dir.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    json_path = markdown_dir / JSON
    json_path.write_text(json.dumps(jsonable({"meta": meta, "results": results}), indent=1) + "\n")
    figure_path = figure_dir / FIGURE
    figure(results, figure_path)
    markdown_path = markdown_dir / MARKDOWN
    relative = Path(os.path.relpath(figure_path, markdown_dir)).as_posix()
    markdown_path.write_text(markdown(meta, results, relative))
    return [markdown_path, json_path, figure_path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results.json written by suite.py")
    parser.add_argument("--output", type=Path, help="directory of the page (default: the JSON's)")
    parser.add_argument(
        "--figure-dir", type=Path, help="directory of the figure (default: --output)"
    )
    args = parser.parse_args()
    data = json.loads(args.results.read_text())
    directory = args.output or args.results.parent
    paths = write_outputs(data["meta"], data["results"], directory, args.figure_dir or directory)
    print("wrote " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
