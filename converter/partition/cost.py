"""The cost of each cut from measured pieces, and the choice of a cut.

Per part: flash = its model + its operators' kernels + the rest of the firmware (footprint.py,
from the linker map of a real build for the device's core); RAM = its measured tensor arena
(+ margin) + a runtime reserve (+ the receive buffer on part 1); instructions = the sum of its
operators' instruction counts measured on the core under QEMU (qemu.profile_operators), turned
into milliseconds at the device's clock assuming one instruction per cycle. The link adds the cut
tensors' bytes plus the frame overhead at the link's rate. An Ethos-U device takes Vela's cycle
estimate for the part instead (vela.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import KitError
from .profiles import Device, Link

# What `tflm-kit partition --cut auto` minimises; a search's are optimize/cost.SEARCH_OBJECTIVES.
CUT_OBJECTIVES = ("latency", "energy", "balance")


@dataclass(frozen=True)
class PartMemory:
    """A part's flash and static RAM with one runtime, and where the figures come from."""
    runtime: str                # tflm, aot, or the accelerator's compiler (Vela)
    flash_bytes: int
    ram_bytes: int
    source: str


@dataclass(frozen=True)
class PartCost:
    device: str
    operators: int
    model_bytes: int
    flash_bytes: int
    ram_bytes: int
    instructions: int | None   # MCU: measured per-operator sum; NPU: None
    cycles: int | None         # NPU: Vela's estimate; MCU: = instructions (1 per cycle)
    ms: float
    flash_budget: int
    ram_budget: int
    runtime: str = "tflm"       # the runtime the flash and RAM figures are for
    memory_source: str = ""     # where they come from

    @property
    def over_budget(self) -> list[tuple[str, int]]:
        """(budget, bytes over) for each budget this part exceeds."""
        over = []
        if self.flash_bytes > self.flash_budget:
            over.append((f"{self.device} flash", self.flash_bytes - self.flash_budget))
        if self.ram_bytes > self.ram_budget:
            over.append((f"{self.device} RAM", self.ram_bytes - self.ram_budget))
        return over


@dataclass(frozen=True)
class CutCost:
    label: str                  # "cut 3" or "whole on <device>"
    tensors: tuple              # tensor indices crossing (empty: whole model on one device)
    tensor_names: tuple
    after_operator: int | None  # the last operator of part 0 in execution order
    link_bytes: int
    link_ms: float
    parts: tuple                # PartCost per part
    energy_mj: float | None = None
    notes: list = field(default_factory=list)

    @property
    def latency_ms(self) -> float:
        return sum(p.ms for p in self.parts) + self.link_ms

    @property
    def balance_ms(self) -> float:
        """The pipeline's period when both devices work on consecutive inputs."""
        return max([p.ms for p in self.parts] + [self.link_ms])

    @property
    def fits(self) -> bool:
        return not any(p.over_budget for p in self.parts)

    def objective(self, name: str) -> float:
        if name == "energy":
            return self.energy_mj if self.energy_mj is not None else float("inf")
        return self.balance_ms if name == "balance" else self.latency_ms

    def as_dict(self) -> dict:
        return asdict(self) | {"latency_ms": self.latency_ms, "balance_ms": self.balance_ms, "fits": self.fits,
                               "over_budget": [b for p in self.parts for b in p.over_budget]}


def energy(parts: list[PartCost], devices: list[Device]) -> float | None:
    if any(d.active_mw is None for d in devices):
        return None
    return sum(p.ms * d.active_mw for p, d in zip(parts, devices)) / 1000.0


def link_cost(link: Link, payload: int) -> tuple[int, float]:
    return payload, link.seconds(payload) * 1000.0


def choose(costs: list[CutCost], objective: str) -> CutCost:
    """The cut minimising `objective` among those within both devices' budgets."""
    if objective not in CUT_OBJECTIVES:
        raise KitError(f"unknown objective '{objective}'", f"use one of {', '.join(CUT_OBJECTIVES)}")
    cuts = [c for c in costs if c.tensors]
    if objective == "energy" and all(c.energy_mj is None for c in cuts):
        raise KitError("--objective energy needs each device's active power", "give active_mw in --profiles "
                       "for both devices, or use --objective latency")
    fitting = [c for c in cuts if c.fits]
    if not fitting:
        best = min(cuts, key=lambda c: c.objective(objective))
        fails = "; ".join(f"{budget} by {over:,} bytes" for p in best.parts for budget, over in p.over_budget)
        raise KitError(f"no cut fits both devices' budgets: the best cut by {objective} ({best.label}, "
                       f"{'+'.join(best.tensor_names)}) exceeds {fails}",
                       "pick devices with more flash/RAM, shrink the model (prune, cluster, compress) or "
                       "lower the arena margin")
    return min(fitting, key=lambda c: (c.objective(objective), c.link_bytes))


def precheck(labels: list[str], needs: list[tuple[tuple[int, int], tuple[int, int]]], devices) -> None:
    """Refuse before measuring firmware when no cut fits even by its model and arena alone.

    needs[k] = ((flash, RAM) of part 0, (flash, RAM) of part 1) lower bounds for cut k."""
    def shortfall(pair):
        return [(f"{d.name} {kind}", need - have) for (flash, ram), d in zip(pair, devices)
                for kind, need, have in (("flash", flash, d.flash_bytes), ("RAM", ram, d.ram_bytes)) if need > have]

    short = [shortfall(pair) for pair in needs]
    if short and all(short):
        k = min(range(len(short)), key=lambda i: sum(n for _, n in short[i]))
        fails = "; ".join(f"{budget} by {over:,} bytes" for budget, over in short[k])
        raise KitError(f"no cut fits both devices' budgets: even by model and tensor arena alone (before the "
                       f"runtime), the closest cut ({labels[k]}) exceeds {fails}",
                       "pick devices with more flash/RAM or shrink the model (prune, cluster, compress)")
