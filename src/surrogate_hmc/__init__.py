"""surrogate-hmc: exact Hamiltonian Monte Carlo for expensive PyMC models, with neural surrogates.

PyMC models are float64, so importing this package enables JAX's 64-bit mode; it also turns on
JAX's persistent compilation cache (see :mod:`surrogate_hmc._jax_setup`).
"""

from surrogate_hmc._jax_setup import configure_jax

configure_jax()

from surrogate_hmc.core import (  # noqa: E402
    NetworkConfig,
    Schedule,
    SwitchTest,
    TrainedSurrogate,
    TrainingConfig,
)
from surrogate_hmc.diagnostics import decisions, plot_diagnostics  # noqa: E402
from surrogate_hmc.estimator import CostEstimator  # noqa: E402
from surrogate_hmc.sampling import sample  # noqa: E402
from surrogate_hmc.simulation import SimulationWarning  # noqa: E402
from surrogate_hmc.step_methods import (  # noqa: E402
    ACE,
    SurrogateCostWarning,
    SurrogateHMC,
    SurrogateWarning,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ACE",
    "CostEstimator",
    "NetworkConfig",
    "Schedule",
    "SimulationWarning",
    "SurrogateCostWarning",
    "SurrogateHMC",
    "SurrogateWarning",
    "SwitchTest",
    "TrainedSurrogate",
    "TrainingConfig",
    "__version__",
    "decisions",
    "plot_diagnostics",
    "sample",
]
