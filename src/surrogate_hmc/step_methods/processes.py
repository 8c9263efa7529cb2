"""Where a chain runs: forked worker processes that JAX cannot use, and interrupts to keep.

Two faults of the process a chain runs in, each turned into a defined outcome:

- A worker forked (Linux's default start method) from a parent that had already run JAX hangs
  at its first JAX call. :func:`refuse_fork_after_jax` raises a clear error before the chain's
  first iteration instead.
- JAX runs Python code from the garbage collector; a Ctrl-C that lands there raises inside a
  callback, where Python prints "Exception ignored" and sampling goes on. :class:`Interrupts`
  remembers every Ctrl-C, so the chain's next step raises it where PyMC catches it and returns
  the partial trace.
"""

import os
import signal
import threading

__all__ = ["INTERRUPTS", "Interrupts", "refuse_fork_after_jax"]


_FORKED_AFTER_JAX = False


def _note_fork_in_child() -> None:
    # Runs in a child right after os.fork(): were JAX's backends running in the parent?
    global _FORKED_AFTER_JAX
    from jax._src.xla_bridge import backends_are_initialized

    _FORKED_AFTER_JAX = backends_are_initialized()


os.register_at_fork(after_in_child=_note_fork_in_child)


def refuse_fork_after_jax(what: str) -> None:
    """Raise a ``RuntimeError`` before JAX runs in a process forked from one that ran JAX.

    Whether the parent had started JAX is recorded at the fork itself (``os.register_at_fork``
    and ``jax._src.xla_bridge.backends_are_initialized``, checked on JAX 0.4.35 to 0.12), so a
    worker started by ``forkserver`` or ``spawn``, or one that starts JAX itself (for example
    by unpickling a step that holds JAX arrays), is never refused. The step methods call it
    before a chain's first iteration, so the run fails in seconds, not after its tuning work.
    """
    if _FORKED_AFTER_JAX:
        raise RuntimeError(
            f"This chain's process was forked from one that had already run JAX, and JAX "
            f"hangs after such a fork, so {what} stops before the chain's first iteration. "
            "Sample with pm.sample(..., mp_ctx='forkserver') (in a script, under "
            "if __name__ == '__main__':), or with cores=1, or run your own JAX code in another "
            "process."
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
