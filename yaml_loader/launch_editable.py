"""``launch-editable:``: the config keys of one satellite a launch may change although the
cluster file fixes them (what the satellite's credentials act on: a bucket, an object key...).

The loader checks only that each listed key is a key of the satellite's config model, as the
file spells it (``file-path``) or as the model names it (``file_path``); which keys are fixed at
all is the satellite's declaration (``satellite_ops.launch``), read where run config is built.
"""

from __future__ import annotations

from typing import Any

from yaml_loader.errors import ConfigError, KeyPath, did_you_mean
from yaml_loader.source import SourceMap


def launch_editable_errors(
    model: Any, keys: list[str] | None, source: SourceMap, path: KeyPath
) -> list[ConfigError]:
    """An error at each listed key the satellite's config model does not have."""
    fields = getattr(model, "model_fields", {})
    known = {info.alias or name: name for name, info in fields.items()}
    errors = []
    for index, key in enumerate(keys or ()):
        if key in known or key in known.values():
            continue
        errors.append(
            source.error(
                (*path, index),
                f"'{key}' is not a config key of this satellite",
                hint=did_you_mean(key, known)
                or f"list keys of its config: {', '.join(sorted(known)) or 'it has none'}",
            )
        )
    return errors
