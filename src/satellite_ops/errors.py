"""Errors a satellite raises to steer the runtime, and errors of the satellite registry.

The runtime retries any exception except :class:`FatalError`; raising :class:`RetryableError`
only makes the intent explicit and can carry a server-suggested wait.
"""

from __future__ import annotations


class SatelliteError(Exception):
    """Base of every error a satellite raises on purpose."""


class RetryableError(SatelliteError):
    """A transient problem (throttling, 5xx, lost connection): retry the item later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
