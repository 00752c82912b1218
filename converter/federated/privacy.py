"""The (epsilon, delta) a DP federated run spends, from Google's dp-accounting library.

Client-level DP: each client's whole shard is one "record". Every sampled client clips its model
update to L2 norm C (Flower's fixedclipping_mod) and the server adds Gaussian noise to the
aggregate (Flower's DifferentialPrivacyClientSideFixedClipping). What is accounted depends on how
clients are sampled (dp.sampling), and each case is given to the accountant as the event it is:

- poisson (default): each round every client joins independently with probability q = fraction_fit
  (the kit's seeded draw). The server divides the sum of the clipped updates by the *expected*
  count m = q*N, a constant, and adds N(0, (z*C/m)^2) per coordinate: noise z*C on the sum. Adding
  or removing one client moves the sum by at most C, so this is dp-accounting's
  PoissonSampledDpEvent(q, GaussianDpEvent(z)) under add-or-remove-one (RDP).
- fixed: exactly m = clients_per_round clients, drawn without replacement; N is public and the
  relation is "replace one client", which moves the sum by up to 2C: SampledWithoutReplacementDpEvent
  of GaussianDpEvent(z/2) (RDP). For the same noise this spends several times the epsilon of
  poisson, so it is only there for deployments that cannot sample independently.
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
    accountant: str

    def as_dict(self) -> dict:
        return {"epsilon": round(self.epsilon, 4), "delta": self.delta, "rounds": self.rounds,
                "sampling_rate": round(self.sampling_rate, 6), "noise_multiplier": self.noise_multiplier,
                "accountant": self.accountant}


ACCOUNTANTS = {"poisson": "dp-accounting RDP, Poisson sampling, add-or-remove one client",
               "fixed": "dp-accounting RDP, fixed-size sampling without replacement, replace-one client"}


def _round_event(dp: DpSettings, clients: int, sampled: int):
    import dp_accounting

    if dp.sampling == "poisson":
        return dp_accounting.PoissonSampledDpEvent(sampled / clients, dp_accounting.GaussianDpEvent(dp.noise_multiplier))
    return dp_accounting.SampledWithoutReplacementDpEvent(
        source_dataset_size=clients, sample_size=int(sampled), event=dp_accounting.GaussianDpEvent(dp.noise_multiplier / 2))


def epsilon_after(dp: DpSettings, clients: int, sampled: float, rounds: int) -> float:
    """sampled: clients per round (poisson: the expected number, clients * fraction_fit)."""
    import logging

    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    relation = (dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE if dp.sampling == "poisson"
                else dp_accounting.NeighboringRelation.REPLACE_ONE)
    accountant = RdpAccountant(neighboring_relation=relation)
    per_round = _round_event(dp, clients, sampled)
    accountant.compose(dp_accounting.SelfComposedDpEvent(per_round, rounds))
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # it warns for each low RDP order it skips; the bound uses the others
    try:
        return float(accountant.get_epsilon(dp.delta))
    finally:
        absl.setLevel(level)


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
    sampled = settings.expected_clients_per_round
    epsilon = epsilon_after(dp, settings.clients, sampled, rounds)
    if not math.isfinite(epsilon):
        raise KitError(f"dp settings give an unbounded epsilon (noise_multiplier {dp.noise_multiplier}, "
                       f"{sampled:g} of {settings.clients} clients per round, {rounds} rounds, delta {dp.delta})",
                       "raise dp.noise_multiplier or dp.delta, or sample fewer clients or rounds")
    return PrivacySpent(epsilon, dp.delta, rounds, sampled / settings.clients, dp.noise_multiplier,
                        ACCOUNTANTS[dp.sampling])
