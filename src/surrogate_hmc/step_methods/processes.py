"""Where a chain runs: forked worker processes that JAX cannot use, and interrupts to keep.

Two faults of the process a chain runs in, each turned into a defined outcome:

- A worker forked (Linux's default start method) from a parent that had already run JAX hangs
  at its first JAX call. :func:`refuse_fork_after_jax` raises a clear error instead.
- JAX runs Python code from the garbage collector; a Ctrl-C that lands there raises inside a
  callback, where Python prints "Exception ignored" and sampling goes on. :class:`Interrupts`
  remembers every Ctrl-C, so the chain's next step raises it where PyMC catches it and returns
  the partial trace.
"""

import os
import signal
import threading

__all__ = ["INTERRUPTS", "Interrupts", "refuse_fork_after_jax"]


def refuse_fork_after_jax(parent_pid: int, what: str) -> None:
    """Raise a ``RuntimeError`` in a process forked from ``parent_pid`` after it ran JAX.

    ``jax._src.xla_bridge.backends_are_initialized`` (checked on JAX 0.4.35 to 0.12) says
    whether this process's JAX backends exist; in a forked child they were inherited from the
    parent, where their threads still run, and any JAX call hangs.
    """
    if os.getpid() == parent_pid:
        return
    from jax._src.xla_bridge import backends_are_initialized

    if backends_are_initialized():
        raise RuntimeError(
            f"This chain's process was forked from one that had already run JAX, and JAX "
            f"cannot run after such a fork ({what} would hang). Sample with "
            "pm.sample(..., mp_ctx='forkserver') (or cores=1), or run your own JAX code in "
            "another process."
        )


class Interrupts:
    """Remembers Ctrl-C (SIGINT) until a chain's step raises it again.

    :meth:`watch` wraps the current SIGINT handler once, in the main thread; the wrapped
    handler still raises ``KeyboardInterrupt`` at once, as Python's does. :meth:`raise_missed`
    raises it again if it was swallowed; :meth:`forget` clears it as a new chain starts.

    Examples
    --------
    >>> interrupts = Interrupts()
    >>> interrupts.pending = True  # a Ctrl-C that was swallowed
    >>> try:
    ...     interrupts.raise_missed()
    ... except KeyboardInterrupt:
    ...     print("raised")
    raised
    >>> interrupts.pending
    False
    """

    def __init__(self) -> None:
        self.pending = False
        self._watching = False

    def watch(self) -> None:
        """Start remembering Ctrl-C (only possible in the main thread; once per process)."""
        if self._watching or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):  # ignored or default at the C level: leave it alone
            return

        def remember(signum, frame):
            self.pending = True
            previous(signum, frame)

        signal.signal(signal.SIGINT, remember)
        self._watching = True

    def forget(self) -> None:
        """Clear a remembered Ctrl-C (a new sampling run starts)."""
        self.pending = False

    def raise_missed(self) -> None:
        """Raise ``KeyboardInterrupt`` if a Ctrl-C came and was swallowed."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


INTERRUPTS = Interrupts()
"""This process's memory of Ctrl-C."""
