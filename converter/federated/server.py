"""The ServerApp's work, the same in Ray simulation and against real SuperNodes: find which node
holds which partition, run Flower's strategy for the rounds, score the global model on the
held-out set after every round, and report what each round did."""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid

from .local_training import build_model, evaluate, exchange_mask, merge_weights, pack_arrays, split_weights
from .settings import FederatedSettings
from .strategy import Roster, RoundTraffic, build_strategy


@dataclass(frozen=True)
class ServerPlan:
    settings: FederatedSettings
    model_json: str
    initial_weights: list
    x_eval: np.ndarray
    y_eval: np.ndarray
    seed: int
    wait_for_clients_seconds: float = 120.0
    on_round: Optional[Callable[[int, int, dict], None]] = None   # (round, rounds, held-out scores)


@dataclass
class FederatedOutcome:
    weights: list
    initial: dict                              # eval loss/accuracy before round 1
    rounds: list[dict] = field(default_factory=list)
    seconds: float = 0.0


class FederationError(RuntimeError):
    """The federation itself failed (a client crashed, nodes missing): not bad user input."""


def _wait_for_nodes(grid: Grid, wanted: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while len(nodes := sorted(grid.get_node_ids())) < wanted:
        if time.monotonic() > deadline:
            raise FederationError(f"only {len(nodes)} of {wanted} clients connected within {seconds:.0f} s")
        time.sleep(0.2)
    return nodes


def discover(grid: Grid, settings: FederatedSettings, seconds: float, seed: int) -> Roster:
    """Ask every node which partition it holds; the partitions must be exactly 0 .. clients-1."""
    nodes = _wait_for_nodes(grid, settings.clients, seconds)
    queries = [Message(RecordDict(), message_type=MessageType.QUERY, dst_node_id=node) for node in nodes]
    partitions = {}
    for reply in grid.send_and_receive(queries, timeout=seconds):
        if reply.has_error():
            raise FederationError(f"client {reply.metadata.src_node_id} failed to describe itself: "
                                  f"{reply.error.reason}")
        partitions[reply.metadata.src_node_id] = int(reply.content["metrics"]["partition-id"])
    if sorted(partitions.values()) != list(range(settings.clients)):
        raise FederationError(f"the clients hold partitions {sorted(partitions.values())}, "
                              f"expected each of 0..{settings.clients - 1} once")
    return Roster(partitions, settings.clients_per_round, seed,
                  poisson_rate=settings.fraction_fit if settings.poisson_sampling else None)


def train_config(plan: ServerPlan, fixed: list) -> ConfigRecord:
    s = plan.settings
    config = {"model-json": plan.model_json, "loss": s.loss, "local-epochs": s.local_epochs,
              "batch-size": s.batch_size, "learning-rate": s.learning_rate, "proximal-mu": 0.0,
              "seed": plan.seed, "cpus-per-client": s.cpus_per_client, "freeze-batch-norm": s.freeze_batch_norm}
    return ConfigRecord(config | ({"fixed-weights": pack_arrays(fixed)} if fixed else {}))


class _PoissonCountsVary(logging.Filter):
    """Drops Flower's DP warning that a round's replies differ from the expected count: under Poisson
    sampling they vary by design (the kit divides by the expected count, which the noise is sized for)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flwr.supercore.differential_privacy import CLIENTS_DISCREPANCY_WARNING

        return record.msg != CLIENTS_DISCREPANCY_WARNING


def _rounded(value) -> Optional[float]:
    """A client metric averaged by the strategy; None in a round nobody was drawn for."""
    return None if value is None else round(float(value), 5)


def run_server(grid: Grid, plan: ServerPlan) -> FederatedOutcome:
    started = time.perf_counter()
    random.seed(plan.seed)
    np.random.seed(plan.seed % 2**32)  # Flower's DP noise draws from NumPy's global generator
    roster = discover(grid, plan.settings, plan.wait_for_clients_seconds, plan.seed)
    traffic = RoundTraffic()
    strategy = build_strategy(plan.settings, roster, traffic)
    scorer = build_model(plan.model_json)
    mask = exchange_mask(scorer, plan.settings.freeze_batch_norm)
    exchanged, fixed = split_weights(list(plan.initial_weights), mask)
    scores: dict[int, dict] = {}
    ended: dict[int, float] = {}

    def score(server_round: int, arrays: ArrayRecord) -> Optional[MetricRecord]:
        ended[server_round] = time.perf_counter()
        scorer.set_weights(merge_weights(arrays.to_numpy_ndarrays(), fixed, mask))
        scores[server_round] = evaluate(scorer, plan.x_eval, plan.y_eval, plan.settings.loss)
        if plan.on_round is not None:
            plan.on_round(server_round, plan.settings.rounds, scores[server_round])
        return MetricRecord(scores[server_round])

    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.WARNING)  # Flower logs every round at INFO; the stage record has it all
    counts_vary = _PoissonCountsVary()
    if plan.settings.poisson_sampling:
        flwr_logger.addFilter(counts_vary)
    try:
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord(exchanged),
                                num_rounds=plan.settings.rounds, train_config=train_config(plan, fixed),
                                evaluate_fn=score)
    finally:
        flwr_logger.setLevel(level)
        flwr_logger.removeFilter(counts_vary)
    missing = [r for r in range(1, plan.settings.rounds + 1) if r not in result.train_metrics_clientapp]
    if missing:
        raise FederationError(f"round(s) {missing} produced no aggregate (clients failed; see Flower's log)")
    rounds = []
    for r in range(1, plan.settings.rounds + 1):
        clients_said = result.train_metrics_clientapp[r]
        rounds.append({"round": r, "clients": traffic.clients[r], "bytes_sent": traffic.sent[r],
                       "bytes_received": traffic.received[r],
                       "train_loss": _rounded(clients_said.get("train-loss")),
                       "update_norm": _rounded(clients_said.get("update-norm")),  # clients' mean, before clipping
                       **{f"eval_{k}": v for k, v in scores[r].items()},
                       "seconds": round(ended[r] - ended[r - 1], 2)})
    return FederatedOutcome(weights=merge_weights(result.arrays.to_numpy_ndarrays(), fixed, mask),
                            initial=scores[0], rounds=rounds,
                            seconds=round(time.perf_counter() - started, 2))
