"""The capacity model's check: chunks the fleet sends one Triton against micro_chunker's instances.

Each micro_chunker instance holds one macro chunk. The orchestrators together
keep `chunks_in_flight_per_endpoint x orchestrator_replicas` chunks in flight
per Triton endpoint. More than the instances and the surplus waits inside
Triton, where it counts against `chunk_timeout_sec` and no autoscaler sees it;
fewer and instances sit idle holding memory. Pure, except `read_config`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from orchestrator.settings import Settings

log = logging.getLogger("longscribe.capacity")


@dataclass(frozen=True)
class Mismatch:
    """The fleet's chunks per Triton and the instances there disagree."""

    surplus: bool  # True: more chunks than instances (they queue); False: idle instances
    message: str


def fleet_chunks(settings: Settings) -> int:
    """Macro chunks all orchestrators together keep in flight on one Triton endpoint."""
    return settings.chunks_in_flight_per_endpoint * settings.orchestrator_replicas


def instance_count(config: model_config_pb2.ModelConfig) -> int:
    """Instances of a model over all its instance groups (a group without `count` has one)."""
    return sum(group.count or 1 for group in config.instance_group) or 1


def read_config(path: Path) -> model_config_pb2.ModelConfig:
    """A config.pbtxt, parsed by Triton's own schema."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def check(settings: Settings, instances: int, where: str) -> Mismatch | None:
    """None when the fleet sends `where` exactly as many chunks as its micro_chunker has instances."""
    sent = fleet_chunks(settings)
    if sent == instances:
        return None
    share = (
        f"{settings.chunks_in_flight_per_endpoint} chunks in flight per endpoint x "
        f"{settings.orchestrator_replicas} orchestrator(s) = {sent}"
    )
    if sent > instances:
        return Mismatch(
            True,
            f"{where}: {share} macro chunks at once, but {settings.micro_chunk_model} has {instances} instance(s): "
            f"{sent - instances} would wait inside Triton against chunk_timeout_sec, unseen by the autoscaler. "
            f"Set LONGSCRIBE_CHUNKS_PER_TRITON to the instance count (and leave "
            f"LONGSCRIBE_CHUNKS_IN_FLIGHT_PER_ENDPOINT unset), or give the model {sent} instances.",
        )
    return Mismatch(
        False,
        f"{where}: {settings.micro_chunk_model} has {instances} instance(s) but gets only {share} macro chunks "
        f"at once: {instances - sent} stay idle. Set LONGSCRIBE_CHUNKS_PER_TRITON={instances}, a multiple of "
        f"LONGSCRIBE_ORCHESTRATOR_REPLICAS.",
    )


def warn_on_mismatch(settings: Settings, instances: int, where: str) -> None:
    """Log what disagrees at a Triton endpoint the orchestrator does not own (it may be mid-rollout)."""
    mismatch = check(settings, instances, where)
    if mismatch is not None:
        log.warning("%s", mismatch.message)
