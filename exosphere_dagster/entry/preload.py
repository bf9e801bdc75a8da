"""Imported once by the forkserver that step processes are forked from (executor.py): the
modules every step would otherwise import for itself. Dagster, the storage classes of the
``$DAGSTER_HOME`` instance (SQLite or Postgres), the product, the built-in satellites and the
plugin satellites (entry points and ``EXOSPHERE_SATELLITE_MODULES``).

Only imports: no connection, no thread, no cluster file read, since all of it would be shared
by every forked step. A failure is logged and skipped: a step then imports what it needs
itself, as it would with ``spawn``.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os

logger = logging.getLogger("exosphere")
PRELOAD_JOB_ENV = "EXOSPHERE_PRELOAD_JOB"  # executor.PRELOAD_JOB_ENV (not imported: no Dagster)

PRODUCT_MODULES = (
    "dagster",
    "exosphere_dagster.definitions",  # builds nothing on import (location.py)
    "exosphere_dagster.translate.job",
    "exosphere_dagster.translate.scheduling.breach_job",
    "exosphere_dagster.runtime.execute",
    "exosphere_dagster.runtime.checkpoint",
    # what a step process of Dagster's imports on first use (seen in py-spy profiles of steps)
    "dagster._core.storage.fs_io_manager",
    "dagster._core.storage.upath_io_manager",
    "dagster._core.workspace.autodiscovery",
    "dagster._core.system_config.composite_descent",
    "dagster._utils.test",
    "upath",
    "upath.implementations.local",
)


def instance_classes() -> list[str]:
    """``module.Class`` of each configurable part of the ``$DAGSTER_HOME`` instance."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return []
    from dagster._core.instance.ref import InstanceRef

    ref = InstanceRef.from_dir(home)
    return [
        f"{part.module_name}.{part.class_name}"
        for part in ref._asdict().values()
        if hasattr(part, "module_name") and hasattr(part, "class_name")
    ]


def _import(name: str, attribute: str | None = None) -> None:
    try:
        module = importlib.import_module(name)
        if attribute:
            getattr(module, attribute)  # classes re-exported lazily import on access
    except Exception as exc:  # a preload must never stop the forkserver
        logger.warning("forkserver preload: could not import %s: %s", name, exc)


def preload() -> None:
    for name in PRODUCT_MODULES:
        _import(name)
    try:
        classes = instance_classes()
    except Exception as exc:
        logger.warning("forkserver preload: could not read the instance config: %s", exc)
        classes = []
    for dotted in classes:
        module, _, attribute = dotted.rpartition(".")
        _import(module, attribute)
    try:
        from exosphere_dagster.resolve.catalog import registry_with_plugins

        registry_with_plugins()  # imports the built-in and the plugin satellite modules
    except Exception as exc:
        logger.warning("forkserver preload: satellite plugins not preloaded: %s", exc)


def build_job() -> None:
    """Build the run's job (``EXOSPHERE_PRELOAD_JOB``, set by the executor for this server
    only) as a step would: the lazy code location (or ``reconstruct.job_for_file``) keeps it,
    and every forked step finds it built."""
    origin = os.environ.pop(PRELOAD_JOB_ENV, None)
    if not origin:
        return
    try:
        from dagster._core.origin import JobPythonOrigin
        from dagster._serdes import deserialize_value
        from dagster._utils.hosted_user_process import recon_job_from_origin

        recon_job_from_origin(deserialize_value(origin, JobPythonOrigin)).get_definition()
    except Exception as exc:  # the steps build it themselves, as without a preload
        logger.warning("forkserver preload: the run's job was not built: %s", exc)


preload()
build_job()
# Everything imported so far lives as long as the server: keep the garbage collector of each
# forked step from walking it (a full collection over it cost ~0.2 s per step here) and from
# touching its pages, which fork shares copy-on-write.
gc.freeze()
