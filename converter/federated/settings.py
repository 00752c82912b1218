"""The `federated` stage's recipe settings. Kept free of kit imports so recipe.py can use them."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DpSettings(BaseModel):
    """Client-side clipping of each update + Gaussian noise on the aggregate (Flower's central DP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_norm: float = Field(1.0, gt=0, description="L2 bound on each client's model update")
    noise_multiplier: float = Field(1.0, ge=0, description="noise std on the sum of updates / clip_norm")
    delta: float = Field(1e-5, gt=0, lt=1)
    sampling: Literal["poisson", "fixed"] = Field(
        "poisson", description="poisson: each client joins a round with probability fraction_fit (the "
        "average divides by the expected count; tightest accounting); fixed: exactly clients_per_round")


class FederatedSettings(BaseModel):
    """Fine-tune the model with federated learning on simulated (or real) Flower clients."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clients: int = Field(10, ge=2, le=100_000, description="number of clients (data partitions)")
    partition: Literal["iid", "dirichlet", "by_key"] = "iid"
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration (small: skewed labels per client)")
    key: Optional[str] = Field(None, description="by_key: the data field that names each sample's owner")
    rounds: int = Field(5, ge=1, le=10_000)
    fraction_fit: float = Field(0.5, gt=0, le=1, description="fraction of clients sampled each round")
    local_epochs: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(0.05, gt=0, description="clients' local SGD step size")
    loss: Literal["sparse_categorical_crossentropy", "categorical_crossentropy", "mse",
                  "binary_crossentropy"] = "sparse_categorical_crossentropy"
    freeze_batch_norm: bool = Field(True, description="clients keep BatchNormalization statistics and scales "
                                    "as received (fine-tuning); false: clients train them too")
    strategy: Literal["fedavg", "fedprox", "fedadam"] = "fedavg"
    mu: float = Field(0.01, ge=0, description="fedprox: weight of the proximal term")
    server_learning_rate: float = Field(0.01, gt=0, description="fedadam: the server's Adam step size")
    dp: Optional[DpSettings] = None
    workers: int = Field(2, ge=1, le=1024, description="clients trained at once (Ray CPUs on this machine)")
    cpus_per_client: float = Field(1.0, gt=0, le=64)
    ray_address: Optional[str] = Field(None, description="an existing Ray cluster, e.g. 'ray://head:10001'")

    @model_validator(mode="after")
    def _consistent(self):
        if self.partition == "by_key" and not self.key:
            raise ValueError("partition by_key needs 'key' (the data field that names each sample's owner)")
        if self.key and self.partition != "by_key":
            raise ValueError("'key' is only used with partition: by_key")
        return self

    @property
    def poisson_sampling(self) -> bool:
        """DP runs sample each client independently (Poisson); plain runs a fixed number per round."""
        return self.dp is not None and self.dp.sampling == "poisson"

    @property
    def expected_clients_per_round(self) -> float:
        """clients * fraction_fit under Poisson sampling (the fixed denominator of the average), else clients_per_round."""
        return self.clients * self.fraction_fit if self.poisson_sampling else float(self.clients_per_round)

    @property
    def clients_per_round(self) -> int:
        """Flower's FedAvg rule, int(clients * fraction_fit), and at least one client."""
        return max(int(self.clients * self.fraction_fit), 1)
