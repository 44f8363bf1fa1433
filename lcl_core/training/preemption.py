"""Preemption: SIGTERM / SIGUSR1 ask the trainer to finish its step, checkpoint and stop.

Clusters preempt a job by sending SIGTERM (Slurm: ``scancel``, a requeue, the end of ``--time``) or the
signal named by ``--signal=USR1@<seconds>``, then killing it after a grace period. The trainer never
stops mid-step: the handler only records the signal, and the loop checks it after each optimiser
step, writes a checkpoint and returns (``Trainer.preempted_by``); ``lcl pretrain`` then exits 0 and
``--resume`` continues exactly where it stopped. Handlers are installed only while the loop runs and
only in the main thread (a signal handler cannot be set elsewhere); the previous ones come back after.
"""

from __future__ import annotations

import contextlib
import signal
import threading

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """The first preemption signal received while the loop runs (``None``: none yet)."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __call__(self, signum, frame) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum).name


@contextlib.contextmanager
def stop_on_preemption_signals():
    """Yields a :class:`StopRequest` that SIGTERM / SIGUSR1 fill in while the block runs."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {sig: signal.signal(sig, request) for sig in PREEMPTION_SIGNALS}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
