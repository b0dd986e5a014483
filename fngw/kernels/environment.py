"""The environment a kernel starts with."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Variables of the gateway's own configuration; they may name or hold secrets and are never passed on.
GATEWAY_ENV_PREFIX = "FNGW_"


def kernel_environment(
    base: Mapping[str, str], extra: Mapping[str, str] = {}, secrets: Iterable[str] = ()
) -> dict[str, str]:
    """``base`` minus the gateway's secrets and ``FNGW_*`` settings, plus ``extra``, plus
    ``KERNEL_GATEWAY=1`` (which notebooks use to detect the gateway, as with Kernel Gateway)."""
    hidden = set(secrets)
    env = {k: v for k, v in base.items() if k not in hidden and not k.startswith(GATEWAY_ENV_PREFIX)}
    env.update(extra)
    env["KERNEL_GATEWAY"] = "1"
    return env
