"""The progress bar's own columns stay whole on an 80-column terminal, on PyMC 5 and 6."""

import io

from pymc.progress_bar import MCMCProgressBarManager
from pymc.step_methods.hmc.nuts import NUTS
from rich import box
from rich.console import Console

from surrogate_hmc.step_methods.progress import PhaseProgressBar

HEADERS = ["Phase", "Div", "Step", "Grads"]
# The widest values of a run: a chain in the exact phase at tree depth 10, one on the surrogate
# after many divergences, with a small step size.
STATS = [
    {"phase": 0, "divergences": 0, "step_size": 0.123456, "n_exact_grad": 1023},
    {"phase": 1, "divergences": 1234, "step_size": 0.00123456, "n_exact_grad": 0},
]
SHOWN = [["exact", "0", "0.123", "1023"], ["surr", "1234", "0.00123", "0"]]


def render(step, stats: list[dict], width: int) -> list[list[str]]:
    """PyMC's progress bar of a run of ``step`` with a chain per ``stats``, ``width`` wide.

    PyMC builds it (``MCMCProgressBarManager``) from the step's columns, as ``pm.sample`` does;
    the table is drawn once into a console of that width instead of live on the terminal, with
    ASCII borders, which take the width of PyMC's blank ones and show where each cell ends.
    Returns the cells of each line of text: the header's, then the rows'.
    """
    manager = MCMCProgressBarManager(step, chains=len(stats), draws=1000, tune=1000)
    backend = manager._backend  # PyMC's RichProgressBackend; its tasks start when it is entered
    backend._initialize_tasks()
    for chain, chain_stats in enumerate(stats):
        manager.update(chain, is_last=False, draw=1500, tuning=False, stats=[chain_stats])
    progress = backend._progress
    for task in progress.tasks:  # the widest speed PyMC shows, whatever the test's own speed
        progress.update(task.id, sampling_speed=1234.56, speed_unit="draws/s")
    table = progress.make_tasks_table(progress.tasks)
    table.box = box.ASCII
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    lines = console.export_text().splitlines()
    rows = [line for line in lines if line.startswith("|") and set(line) - set("|-+")]
    return [[cell.strip() for cell in row.split("|")[1:-1]] for row in rows]


def step_columns(cells: list[list[str]], n: int) -> list[list[str]]:
    """The step's ``n`` columns, after PyMC's bar and draw: the header, then each line."""
    return [row[2 : 2 + n] for row in cells]


def is_cut(cell: str) -> bool:
    return "…" in cell or "..." in cell


def test_our_columns_stay_whole_at_80_columns():
    # Only ours: at 80 columns PyMC cuts some of its own whatever the step method, and shrinks
    # its bar.
    cells = render(PhaseProgressBar, STATS, 80)
    ours = step_columns(cells, len(HEADERS))
    assert ours[0] == HEADERS, cells
    # One line per chain: where PyMC wraps a cell of its own, our cells of the next line are empty.
    assert [row for row in ours[1:] if any(row)] == SHOWN, cells
    assert not any(is_cut(cell) for row in ours for cell in row)


def test_the_check_sees_the_columns_of_pymcs_nuts_cut_at_80_columns():
    # Our former columns were NUTS's three ("Divergences", "Step size", "Grad evals", sharing the
    # width by ratio) and a "Phase"; at 80 columns PyMC cuts them, and the check says so.
    stats = [{"divergences": 0, "step_size": 0.123, "tree_size": 1023}] * 2
    cells = render(NUTS, stats, 80)
    assert any(is_cut(cell) for row in step_columns(cells, 3) for cell in row), cells
