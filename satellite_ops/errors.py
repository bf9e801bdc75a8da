"""Errors a satellite raises to steer the runtime, and errors of the satellite registry.

The runtime retries any exception except :class:`FatalError`; raising :class:`RetryableError`
only makes the intent explicit and can carry a server-suggested wait, read from a
``Retry-After`` header by :func:`parse_retry_after` (the one parser of that header).
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime


class SatelliteError(Exception):
    """Base of every error a satellite raises on purpose."""


class RetryableError(SatelliteError):
    """A transient problem (throttling, 5xx, lost connection): retry the item later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or HTTP date); None when
    absent or unreadable. A date in the past means no wait."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class FatalError(SatelliteError):
    """A problem no retry can fix (bad request, missing bucket): route the item to failure now."""


class RegistryError(Exception):
    """Base of the registry's own errors (bad definitions, unknown names, broken plugins)."""


class SatelliteDefinitionError(RegistryError, TypeError):
    """A satellite was declared wrongly (bad identifier, signature or config model)."""


class DuplicateSatelliteError(RegistryError, ValueError):
    """Two different functions claim the same satellite identifier."""


class UnknownSatelliteError(RegistryError, KeyError):
    """No satellite is registered under an identifier; carries the closest match, if any."""

    def __init__(self, identifier: str, suggestion: str | None = None) -> None:
        self.identifier = identifier
        self.suggestion = suggestion
        message = f"unknown satellite '{identifier}'"
        if suggestion:
            message += f": did you mean '{suggestion}'?"
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        # KeyError would otherwise quote the whole message.
        return self.message


class SatelliteImportError(RegistryError, ImportError):
    """A plugin module (entry point or EXOSPHERE_SATELLITE_MODULES) failed to import."""

    def __init__(self, module: str, reason: str, *, source: str) -> None:
        self.module = module
        self.reason = reason
        self.source = source
        self.message = f"cannot import satellite module '{module}' (from {source}): {reason}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message
