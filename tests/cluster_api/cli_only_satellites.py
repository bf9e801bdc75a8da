"""A satellite only the CLI's environment has (not the server's): a cluster using it passes
``apply``'s own validation and is refused by the server, which ``apply`` must undo."""

from __future__ import annotations

from pydantic import BaseModel

from satellite_ops import satellite


class EchoConfig(BaseModel):
    text: str = "echo"


@satellite("satellite/apitest/cli-only", config=EchoConfig)
def cli_only(config: EchoConfig, input: dict) -> list[dict]:
    """Return the configured text."""
    return [{"text": config.text}]
