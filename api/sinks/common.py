"""What the MQTT and Kafka sinks share besides their thread: round counts and the password."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import SecretStr

from sharpeyes.pipeline.errors import ConfigError


@dataclass
class SinkReport:
    """Counts of one round (or, as a sender's ``totals``, of the sender's life)."""

    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    not_connected: int = 0  # rounds or probes that found no broker (nothing claimed)
    errors: list[str] = field(default_factory=list)

    def add(self, r: SinkReport) -> None:
        """Add one round's counts; the last 20 errors are kept."""
        self.claimed += r.claimed
        self.delivered += r.delivered
        self.failed += r.failed
        self.dead += r.dead
        self.not_connected += r.not_connected
        self.errors = (self.errors + r.errors)[-20:]


def env_secret(
    literal: SecretStr | None, env_name: str | None, sink: str, env: Mapping[str, str] | None
) -> str | None:
    """A password: ``literal`` if given, else the variable ``env_name`` (of ``env`` or the
    process environment), else None.

    Raises:
        ConfigError: ``env_name`` names a variable that is not set.
    """
    if literal is not None:
        return literal.get_secret_value()
    if env_name is None:
        return None
    value = (os.environ if env is None else env).get(env_name)
    if value is None:
        raise ConfigError(f"{sink}: environment variable {env_name} is not set")
    return value
