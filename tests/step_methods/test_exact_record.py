"""The exact phase's training data: a long trajectory is thinned evenly along its length."""

import numpy as np

from surrogate_hmc.core.buffer import MAX_POINTS_PER_ITERATION, TrainingBuffer
from surrogate_hmc.step_methods.exact_model import ExactRecord


def trajectory(n):
    return [(np.array([float(i), 0.0]), -float(i), np.array([-float(i), 0.0])) for i in range(n)]


def test_a_long_trajectory_leaves_evenly_spaced_points_with_both_ends():
    record = ExactRecord(TrainingBuffer(capacity=4096, dim=2), collecting=True)
    for evaluation in trajectory(1023):
        record.keep(*evaluation)
    record.flush()
    kept = record.buffer.positions()[:, 0]
    assert len(kept) == MAX_POINTS_PER_ITERATION and record.pending == []
    assert kept[0] == 0.0 and kept[-1] == 1022.0
    gaps = np.diff(kept)
    assert gaps.min() >= 15 and gaps.max() <= 17, "not evenly spaced"


def test_a_short_trajectory_is_kept_whole_and_nothing_is_kept_unless_collecting():
    record = ExactRecord(TrainingBuffer(capacity=4096, dim=2), collecting=True)
    for evaluation in trajectory(7):
        record.keep(*evaluation)
    record.flush()
    assert len(record.buffer) == 7
    record.collecting = False
    record.keep(*trajectory(9)[8])
    record.flush()
    assert len(record.buffer) == 7


def test_kept_arrays_are_copies():
    record = ExactRecord(TrainingBuffer(capacity=8, dim=2), collecting=True)
    q = np.zeros(2)
    record.keep(q, 0.0, None)
    q[:] = 5.0  # PyMC's integrator may reuse its arrays
    record.flush()
    np.testing.assert_array_equal(record.buffer.positions(), [[0.0, 0.0]])
