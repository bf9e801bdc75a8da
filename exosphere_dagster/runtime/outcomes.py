"""How one attempt of a satellite ended: whether its exception is the item's (retried or not) or
stops the whole step, and its text when even ``str()`` of it fails. Used by runtime/execute.py.
"""

from __future__ import annotations

import asyncio
import signal

from pydantic import ValidationError

from satellite_ops.errors import FatalError
from yaml_loader.templates import TemplateEvaluationError

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupts_step(exc: BaseException) -> bool:
    """Whether ``exc`` stops the whole step instead of failing one item.

    Whatever a satellite raises is its item's failure, ``SystemExit`` and ``KeyboardInterrupt``
    included: a library that calls ``sys.exit()`` must not take a chunk down with it. Two things
    are not the satellite's and propagate: cancellation of the step's own task (``asyncio.run``
    cancels it on Ctrl-C), and anything a signal handler raised (on SIGINT/SIGTERM, e.g. when a
    run is terminated, Dagster's step handler raises ``DagsterExecutionInterruptedError`` in the
    main thread, possibly inside an async satellite's frame); the handler's frame in the
    traceback tells it apart. Signals reach the main thread only: a worker thread raises none.
    """
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0
    handlers = {getattr(signal.getsignal(s), "__code__", None) for s in _SIGNALS} - {None}
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in handlers:
            return True
        tb = tb.tb_next
    return False


def retryable(exc: BaseException) -> bool:
    """Exceptions are retried, except the fatal kinds; a ``BaseException`` that is not an
    ``Exception`` (``SystemExit``, ``KeyboardInterrupt``, ...) asks to stop, so it is not."""
    return isinstance(exc, Exception) and not isinstance(
        exc, FatalError | ValidationError | TemplateEvaluationError
    )


def describe(exc: BaseException) -> str:
    """``Type: message``, or the type alone when the message is empty."""
    text = message(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def message(exc: BaseException) -> str:
    """``str(exc)``, or ``<unprintable>`` when the exception's ``__str__`` itself raises."""
    try:
        return str(exc)
    except BaseException as err:  # noqa: BLE001 - hostile __str__
        if interrupts_step(err):
            raise
        return "<unprintable>"
