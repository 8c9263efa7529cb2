"""The sampling engine behind :func:`surrogate_hmc.sample`: every chain in one program.

Exact NUTS runs every chain in one compiled program while one surrogate learns from their
pooled exact evaluations; once it passes its pilot, a compiled delayed-acceptance NUTS kernel
runs every chain at once. A model too cheap for a surrogate to pay is left to nutpie. Nothing
here imports PyMC: the engine samples a :class:`Target`, a JAX log-density of a flat vector.
"""

from surrogate_hmc.engine.run import EngineConfig, EngineResult, RunReport, run
from surrogate_hmc.engine.target import Target

__all__ = ["EngineConfig", "EngineResult", "RunReport", "Target", "run"]
