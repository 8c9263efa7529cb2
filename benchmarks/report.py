"""The benchmark suite's outputs: a markdown page, the results as JSON, and the ESS/s figure.

``python benchmarks/report.py results.json [--output DIR] [--figure-dir DIR]`` redraws the page
and the figure from a saved ``results.json`` without sampling again (for the docs:
``python benchmarks/report.py docs/benchmarks/results.json --figure-dir docs/_static``).
"""

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

SAMPLER_LABELS = {
    "nuts": "PyMC NUTS",
    "nutpie": "nutpie",
    "logp": "SurrogateHMC logp/NUTS",
    "gradient": "SurrogateHMC gradient/static",
}
COLORS = {"nutpie": "#7f7f7f", "logp": "#1f77b4", "gradient": "#ff7f0e"}
MARKDOWN, JSON, FIGURE = "results.md", "results.json", "benchmark_ratios.png"
# Warnings kept in results.json but left off the page: numba saying that it cannot cache
# PyTensor's compiled graph on disk has no bearing on the runs.
NOT_REPORTED = ("NumbaWarning: Cannot cache compiled function",)

COUNTING = """\
- **Wall time** is the whole run: `pm.sample` for PyMC's NUTS and `SurrogateHMC` (compilation,
  tuning, the exact phase and the training included), and `nutpie.compile_pymc_model` plus
  `nutpie.sample` for nutpie. ESS/s is the minimum bulk ESS over all parameters divided by it.
- **Exact evaluations** cover tuning and draws of all chains. PyMC's NUTS: the sum of `n_steps`
  (one logp+gradient per leapfrog step) plus one per iteration (the start of each trajectory).
  nutpie: the sum of its `n_steps` plus one per chain (it keeps the gradient of the current
  point). `SurrogateHMC`: the sums of its `n_exact_grad` and `n_exact_logp` stats (a logp
  without gradient costs less: the cost of each is in the model's section).
- **Acceptance**: mean `acceptance_rate` (nutpie: `mean_tree_accept`) over the draws; for the
  logp surrogate also the mean second-stage (exact correction) acceptance of its
  surrogate-phase draws.
- **Surrogate draws**: the fraction of draws made in the surrogate phase (0 %: the surrogate
  never passed its switch test and the chain stayed on exact NUTS).
- **max |Δmean| / MCSE**: the largest difference between a posterior mean and PyMC NUTS's, over
  all parameters, in units of their combined Monte Carlo standard error
  (`sqrt(MCSE_NUTS^2 + MCSE^2)`); about 3 or less is what two exact samplers give.
"""


def _fmt(value: Any, spec: str, missing: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, spec)


def summary_table(results: list[dict]) -> list[str]:
    lines = [
        "| model | sampler | wall time (s) | min bulk / tail ESS | ESS/s | ESS/s ratio to NUTS "
        "| exact grad evals | exact logp evals | acceptance | surrogate draws "
        "| max \\|Δmean\\| / MCSE |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for sampler, record in result["runs"].items():
            label = record["label"]
            model = result["title"]
            if record["status"] != "ok":
                lines.append(
                    f"| {model} | {label} | failed: {_escape(record['error'])} |" + " |" * 8
                )
                continue
            s = record["summary"]
            acceptance = _fmt(s.get("acceptance"), ".3f")
            if math.isfinite(s.get("second_stage") or math.nan):
                acceptance += f" / {s['second_stage']:.3f}"
            ratio = "-" if s.get("ratio") is None else _three_digits(s["ratio"])
            if sampler != "nuts" and s.get("ratio") is not None:
                ratio = f"**{ratio}**"
            cells = [
                _fmt(s["wall_time"], ".1f"),
                f"{s['min_bulk_ess']:.0f} / {s['min_tail_ess']:.0f}",
                _three_digits(s["ess_per_s"]),
                ratio,
                f"{s['grad_evals']:,}",
                f"{s['logp_evals']:,}",
                acceptance,
                f"{100 * s['surrogate_fraction']:.0f} %" if "surrogate_fraction" in s else "",
                _fmt(s.get("max_difference"), ".2f"),
            ]
            lines.append(f"| {model} | {label} | " + " | ".join(cells) + " |")
    return lines


def _three_digits(value: float) -> str:
    """About three significant digits, without switching to exponents or dropping zeros."""
    for limit, spec in ((100, ".0f"), (10, ".1f"), (1, ".2f")):
        if abs(value) >= limit:
            return format(value, spec)
    return format(value, ".3g")


def _escape(text: str) -> str:
    """A message as text for a table cell or a code span: no pipes, newlines or backticks."""
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def model_section(result: dict) -> list[str]:
    size = ", ".join(f"{key}={value:,}" for key, value in result["size"].items()) or "fixed"
    costs = result["costs"]
    lines = [
        f"#### {result['title']}",
        "",
        f"- size: {size}; tune={result['tune']}, draws={result['draws']}"
        + (f", chains={result['chains']}" if "chains" in result else "")
        + (f" ({result['notes']})" if result.get("notes") else ""),
        f"- one exact logp: {1e3 * costs['logp']:.3f} ms; one exact logp + gradient: "
        f"{1e3 * costs['logp_dlogp']:.3f} ms (at the initial point, this process)",
    ]
    for record in result["runs"].values():
        label = record["label"]
        load = f"load average after the run {record['load_average']:.1f}"
        if record["status"] != "ok":
            lines.append(f"- {label}: **failed**: `{_escape(record['error'])}` ({load})")
        else:
            s = record["summary"]
            parts = [f"{s['divergences']} divergent draws"]
            if "max_difference_parameter" in s:
                parts.append(
                    f"largest mean difference at `{s['max_difference_parameter']}` "
                    f"({s['max_difference']:.2f} MCSE)"
                )
            if "switch_iterations" in s:
                parts.append(
                    "first tuning iteration in the surrogate phase (pilot included) per chain "
                    f"{s['switch_iterations']}"
                )
            if math.isfinite(s.get("draw_time") or math.nan) and s["kind"] == "surrogate":
                parts.append(f"{1e3 * s['draw_time']:.2f} ms per surrogate-phase draw")
            lines.append(f"- {label}: " + "; ".join(parts) + f" ({load})")
        lines += [
            f"  - warning: `{_escape(w)}`"
            for w in record["warnings"]
            if not any(text in w for text in NOT_REPORTED)
        ]
    return [*lines, ""]


def markdown(meta: dict, results: list[dict], figure: str) -> str:
    load_start = ", ".join(f"{x:.1f}" for x in meta["load_average_start"])
    load_end = ", ".join(f"{x:.1f}" for x in meta["load_average_end"])
    settings = meta["settings"]
    # Before the run only others load the machine; at its end this process adds about 1.
    loaded = meta["load_average_start"][0] > 1.0 or meta["load_average_end"][0] > 2.0
    load_note = (
        "The machine was shared with other jobs while this ran, so the wall times (and ESS/s) "
        "are noisier than on an idle machine; the samplers of one model ran one after the other "
        "in one process and were affected alike, as far as the load stayed constant."
        if loaded
        else "The machine was otherwise idle."
    )
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    lines = [
        "## Results",
        "",
        f"Run on {meta['date']} (commit {meta['commit']}) with `{meta['command']}`"
        f"{', a quick smoke run: small models and short chains' if settings['quick'] else ''}; "
        f"{meta['total_minutes']:.0f} minutes in all.",
        "",
    ]
    for update in meta.get("updates", []):
        lines += [
            f"Re-run on {update['date']} (commit {update['commit']}, load average "
            f"{update['load_average_start'][0]:.1f} at its start) with `{update['command']}`, "
            f"which replaced the results of: {', '.join(update['models'])}.",
            "",
        ]
    if meta.get("models_missing"):
        lines += [
            f"**Partial results**: the run stopped before {', '.join(meta['models_missing'])}.",
            "",
        ]
    chains = settings["chains"]
    chains = f"{chains} chains" if isinstance(chains, int) else "the chains of each model"
    lines += [
        f"- Machine: {meta['machine']}. Load average (1, 5, 15 min) {load_start} at the start "
        f"and {load_end} at the end. {load_note}",
        f"- Versions: {versions}.",
        f"- Settings: {chains}, cores={settings['cores']}, "
        f"seed {settings['seed']}, BLAS threads {settings['blas_threads']}; every sampler of a "
        "model has the same tune, draws and chains (in its section below).",
        "",
        f"![ESS/s ratio to PyMC NUTS per model]({figure})",
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    samplers = [s for s in COLORS if any(s in r["runs"] for r in results)]
    width = 0.8 / max(len(samplers), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(results) + 2.5), 4.5), layout="constrained")
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=1)
    ratios = [1.0]
    for i, sampler in enumerate(samplers):
        offset = (i - (len(samplers) - 1) / 2) * width
        for j, result in enumerate(results):
            record = result["runs"].get(sampler)
            if record is None:
                continue
            x = j + offset
            ratio = (record.get("summary") or {}).get("ratio")
            if ratio is None:
                ax.text(x, 1.0, "failed", rotation=90, ha="center", va="bottom", fontsize=7)
                continue
            ratios.append(ratio)
            ax.bar(x, ratio, width, color=COLORS[sampler])
            ax.text(x, ratio, f"{ratio:.2g}", ha="center", va="bottom", fontsize=7)
    ax.set_ylim(min(ratios) / 2, max(ratios) * 2)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xticks(range(len(results)), [r["title"] for r in results], rotation=20, ha="right")
    ax.set_ylabel("ESS/s (min bulk) relative to PyMC NUTS")
    ax.set_title("ESS per second relative to PyMC's NUTS (line at 1)\nsame tune, draws and seed")
    handles = [Patch(color=COLORS[s], label=SAMPLER_LABELS[s]) for s in samplers]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
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
    json_path.write_text(json.dumps(_jsonable({"meta": meta, "results": results}), indent=1) + "\n")
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
