"""The example of docs/discrete_variables.md runs as printed: SurrogateHMC beside Metropolis."""

import re
import warnings
from pathlib import Path

import numpy as np

import surrogate_hmc as shmc

PAGE = Path(__file__).parents[2] / "docs" / "discrete_variables.md"


def page_example() -> str:
    """The page's first Python block, as a user copies it."""
    match = re.search(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)
    assert match is not None, f"no Python block in {PAGE}"
    return match.group(1)


def draws(idata, name: str) -> np.ndarray:
    return np.asarray(idata["posterior"][name])


def stat(idata, name: str) -> np.ndarray:
    return np.asarray(idata["sample_stats"][name])


def test_the_change_point_example_runs_and_says_what_the_page_says(capsys):
    namespace: dict = {}
    with warnings.catch_warnings():
        # The page says the switch test may refuse the uncertain change's surrogate.
        warnings.filterwarnings("ignore", category=shmc.SurrogateWarning)
        exec(page_example(), namespace)
    clear, unclear = namespace["clear"], namespace["unclear"]
    for idata in (clear, unclear):
        for name in ("switchpoint", "early_rate", "late_rate"):
            assert draws(idata, name).shape == (2, 400), name
        assert np.all(draws(idata, "switchpoint") == np.round(draws(idata, "switchpoint")))
    assert capsys.readouterr().out.count("switch year") == 2

    # The plain change: the year is 35, and the surrogate took over with a high acceptance.
    years, counts = np.unique(draws(clear, "switchpoint"), return_counts=True)
    assert years[counts.argmax()] == 35 and counts.max() > 0.9 * counts.sum()
    assert abs(draws(clear, "early_rate").mean() - 8) < 1
    assert abs(draws(clear, "late_rate").mean() - 1) < 0.3
    assert np.all(stat(clear, "phase") == 1)
    assert np.nanmean(stat(clear, "second_stage_acceptance")) > 0.9

    # The uncertain change: the year moves, and the surrogate was refused or accepted less.
    assert np.unique(draws(unclear, "switchpoint")).size > 3
    second_stage = stat(unclear, "second_stage_acceptance")
    refused = np.any(stat(unclear, "phase") == 0)
    assert refused or np.nanmean(second_stage) < 0.7
