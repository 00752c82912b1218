"""Flower's strategies (FedAvg, FedProx, FedAdam, DP wrapper) with the kit's seeded client sampling.

Flower samples nodes with Python's global `random` over node ids that are themselves random, and
sums replies in arrival order; both would make runs differ. The roster maps each node to the
partition it holds (asked once with a query message), the kit samples partitions with a seeded
RNG, and replies are aggregated in partition order — so one seed gives the same weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import (DifferentialPrivacyClientSideFixedClipping, FedAdam, FedAvg, FedProx,
                                     Strategy)

from .settings import FederatedSettings


@dataclass
class Roster:
    """Node id -> partition id, and the seeded choice of partitions for each round: `per_round` of
    them, or with `poisson_rate` each partition independently with that probability (DP runs: the
    sampling the accountant is told about; a round may then have any number of clients, even 0)."""

    partitions: dict[int, int]
    per_round: int
    seed: int
    poisson_rate: float | None = None

    def sample(self, server_round: int) -> list[int]:
        by_partition = {p: node for node, p in self.partitions.items()}
        rng = np.random.default_rng([self.seed, server_round])
        if self.poisson_rate is not None:
            chosen = np.flatnonzero(rng.random(len(by_partition)) < self.poisson_rate)
        else:
            chosen = np.sort(rng.choice(len(by_partition), size=self.per_round, replace=False))
        return [by_partition[int(p)] for p in chosen]


@dataclass
class RoundTraffic:
    """Model payload bytes (weights, not protocol framing) per round, both directions."""

    sent: dict[int, int] = field(default_factory=dict)
    received: dict[int, int] = field(default_factory=dict)
    clients: dict[int, int] = field(default_factory=dict)


def _nbytes(arrays: ArrayRecord) -> int:
    return int(sum(a.numpy().nbytes for a in arrays.values()))


class RosterSampling(FedAvg):
    """Sits just above FedAvg in the MRO: FedProx/FedAdam's own steps run, sampling and order are ours.
    With `fixed_denominator` (Poisson-sampled DP) the round's result is global + sum(updates) / that
    constant instead of the mean over however many clients replied (what the DP noise is sized for)."""

    roster: Roster
    traffic: RoundTraffic
    fixed_denominator: float | None = None
    _sent: ArrayRecord | None = None

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):  # noqa: ARG002 (Flower's signature)
        self._sent = arrays
        config["server-round"] = server_round
        nodes = self.roster.sample(server_round)
        # the fixed (frozen) weights travel in the config, once per client and round
        fixed = len(config["fixed-weights"]) if "fixed-weights" in config else 0
        self.traffic.sent[server_round] = (_nbytes(arrays) + fixed) * len(nodes)
        self.traffic.clients[server_round] = len(nodes)
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return self._construct_messages(record, nodes, MessageType.TRAIN)

    def aggregate_train(self, server_round: int, replies):
        ordered = sorted(replies, key=lambda m: self.roster.partitions.get(m.metadata.src_node_id, -1))
        self.traffic.received[server_round] = sum(_nbytes(r) for m in ordered if not m.has_error()
                                                  for r in m.content.array_records.values())
        if self.fixed_denominator is None:
            return super().aggregate_train(server_round, ordered)
        if not ordered:  # nobody drawn: the update is 0 (the DP wrapper still adds its noise)
            return self._sent, MetricRecord({})
        arrays, metrics = super().aggregate_train(server_round, ordered)
        if arrays is None:
            return arrays, metrics
        share = sum(not m.has_error() for m in ordered) / self.fixed_denominator
        start = self._sent.to_numpy_ndarrays()
        return ArrayRecord([(s + share * (m - s)).astype(s.dtype)
                            for s, m in zip(start, arrays.to_numpy_ndarrays())]), metrics

    def configure_evaluate(self, server_round, arrays, config, grid):  # noqa: ARG002 (Flower's signature)
        return []  # the server scores the global model on the held-out set itself


def _flower_class(name: str) -> type:
    base = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}[name]
    return RosterSampling if base is FedAvg else type(f"Seeded{base.__name__}", (base, RosterSampling), {})


def build_strategy(settings: FederatedSettings, roster: Roster, traffic: RoundTraffic) -> Strategy:
    per_round = roster.per_round
    # DP needs equal client weights (the noise is calibrated to one client's clipped update / m).
    weight_key = "unit-weight" if settings.dp else "num-examples"
    kwargs = dict(fraction_train=settings.fraction_fit, fraction_evaluate=0.0, min_train_nodes=per_round,
                  min_available_nodes=settings.clients, weighted_by_key=weight_key)
    if settings.strategy == "fedprox":
        kwargs["proximal_mu"] = settings.mu
    if settings.strategy == "fedadam":
        kwargs |= {"eta": settings.server_learning_rate, "eta_l": settings.learning_rate}
    strategy = _flower_class(settings.strategy)(**kwargs)
    strategy.roster, strategy.traffic = roster, traffic
    if settings.dp is None:
        return strategy
    if settings.poisson_sampling:
        strategy.fixed_denominator = settings.expected_clients_per_round
    # noise std on the average: noise_multiplier * clip_norm / (expected) clients per round
    return DifferentialPrivacyClientSideFixedClipping(strategy, noise_multiplier=settings.dp.noise_multiplier,
                                                      clipping_norm=settings.dp.clip_norm,
                                                      num_sampled_clients=settings.expected_clients_per_round)
