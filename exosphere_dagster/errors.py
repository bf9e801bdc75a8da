"""The one exception root of exosphere_dagster: every error the product raises for bad input
(a deployment variable, the placement file, the prices file, a cluster that cannot be resolved)
is an :class:`ExosphereError`. When a file is at fault it carries the located problems
(``file:line:col: key.path: message`` and a fix), as the cluster loader's errors do.
"""

from __future__ import annotations

from collections.abc import Sequence

from yaml_loader.errors import ConfigError


class ExosphereError(ValueError):
    """Bad input, said with where it is and how to fix it; never a traceback for the user.
    A ValueError, as the errors it replaces were, so existing handlers keep catching it."""

    def __init__(self, message: str = "", errors: Sequence[ConfigError] = ()) -> None:
        self.errors = list(errors)
        if not message and self.errors:
            message = "\n".join(str(e) for e in self.errors)
        super().__init__(message)


class DeploymentError(ExosphereError):
    """The deployment's settings or files cannot be used (SettingsError, PlacementError and
    PriceTableError say which)."""
