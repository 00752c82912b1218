"""The (epsilon, delta) a DP federated run spends, from Google's dp-accounting library.

What is accounted (client-level DP, each client's whole shard is one "record"):
- each round the server samples m of the N clients uniformly without replacement (the kit's
  seeded sampling, Flower's FedAvg sample size rule), so n = N is public and the neighbouring
  relation is "replace one client" (dp-accounting's SampledWithoutReplacementDpEvent, RDP);
- each sampled client clips its update to L2 norm C (Flower's fixedclipping_mod); the server
  averages the m updates with equal weights and adds N(0, (z*C/m)^2) noise per coordinate
  (Flower's DifferentialPrivacyClientSideFixedClipping), i.e. noise z*C on the sum;
- replacing one client's update moves the sum by up to 2C, so the Gaussian mechanism's noise
  multiplier (std / sensitivity) is z/2 — the accountant is given z/2, not z.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import KitError
from .settings import DpSettings, FederatedSettings


@dataclass(frozen=True)
class PrivacySpent:
    epsilon: float
    delta: float
    rounds: int
    sampling_rate: float
    noise_multiplier: float
    accountant: str = "dp-accounting RDP, sampling without replacement, replace-one client"

    def as_dict(self) -> dict:
        return {"epsilon": round(self.epsilon, 4), "delta": self.delta, "rounds": self.rounds,
                "sampling_rate": round(self.sampling_rate, 6), "noise_multiplier": self.noise_multiplier,
                "accountant": self.accountant}


def epsilon_after(dp: DpSettings, clients: int, sampled: int, rounds: int) -> float:
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    accountant = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    per_round = dp_accounting.SampledWithoutReplacementDpEvent(
        source_dataset_size=clients, sample_size=sampled,
        event=dp_accounting.GaussianDpEvent(dp.noise_multiplier / 2))
    accountant.compose(dp_accounting.SelfComposedDpEvent(per_round, rounds))
    return float(accountant.get_epsilon(dp.delta))


def account(settings: FederatedSettings, rounds: int | None = None) -> PrivacySpent:
    """The budget the settings spend; KitError when it is infinite or undefined (checked before training)."""
    dp = settings.dp
    if dp is None:
        raise ValueError("account() needs dp settings")
    if settings.strategy == "fedadam":
        raise KitError("dp with strategy fedadam cannot be accounted: Flower adds the noise after the server's "
                       "Adam step, so the noise no longer covers one client's influence",
                       "use strategy fedavg or fedprox with dp")
    if dp.noise_multiplier <= 0:
        raise KitError(f"dp noise_multiplier {dp.noise_multiplier} gives an infinite epsilon (no noise)",
                       "set dp.noise_multiplier above 0 (e.g. 1.0)")
    rounds = settings.rounds if rounds is None else rounds
    sampled = settings.clients_per_round
    epsilon = epsilon_after(dp, settings.clients, sampled, rounds)
    if not math.isfinite(epsilon):
        raise KitError(f"dp settings give an unbounded epsilon (noise_multiplier {dp.noise_multiplier}, "
                       f"{sampled} of {settings.clients} clients per round, {rounds} rounds, delta {dp.delta})",
                       "raise dp.noise_multiplier or dp.delta, or sample fewer clients or rounds")
    return PrivacySpent(epsilon, dp.delta, rounds, sampled / settings.clients, dp.noise_multiplier)
