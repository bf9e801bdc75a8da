"""``Resources``: what a step asks of its machine, the one class for it.

A satellite declares it (``@satellite(..., resources=Resources(gpu=1))``) and a cluster written
in Python overrides it per satellite (``Satellite(..., resources=Resources(cpu="2"))``, the
same class, exported as ``exosphere_dagster.Resources``); a cluster file writes the same keys
under ``resources:``.

Nothing is checked here: ``satellite_ops`` and ``yaml_loader`` do not import each other, and
the one quantity parser is ``yaml_loader/quantities.py``. It checks each value where it is
used, with the location of the code that wrote it: the loader checks a cluster's
``resources:`` (a Python cluster's errors point at the keyword in ``Resources(...)``), and the
resolve stage checks a satellite's declared resources (at each ``uses:`` of it, naming the
file and line of the ``@satellite`` function).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Kubernetes requests of a satellite's steps; ``None`` means "not asked" (the satellite's
    declaration, else the deployment's defaults, apply).

    ``cpu``: cores or millicores (``"2"``, ``"500m"``); ``memory``: bytes with a unit
    (``"4Gi"``, ``"512Mi"``); ``gpu``: whole NVIDIA devices (the step also goes to the GPU
    pool); ``image``: the container image of the step's pod; ``node_selector``: extra node
    labels the pod must match.
    """

    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    image: str | None = None
    node_selector: Mapping[str, str] | None = None
