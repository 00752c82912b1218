"""Split the training set among clients: IID, Dirichlet label skew, or by a natural key (a speaker).

Every split is a pure function of the labels/keys, the settings and the seed, so the same seed
gives the same partition on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import KitError
from .settings import FederatedSettings

DIRICHLET_TRIES = 100


@dataclass(frozen=True)
class Partition:
    shards: list[np.ndarray]   # per client: indices into the training set, ascending

    @property
    def sizes(self) -> list[int]:
        return [len(s) for s in self.shards]

    def summary(self, labels: np.ndarray | None = None) -> dict:
        sizes = np.array(self.sizes)
        out = {"clients": len(self.shards), "samples_min": int(sizes.min()), "samples_max": int(sizes.max()),
               "samples_mean": round(float(sizes.mean()), 1)}
        if labels is not None and np.asarray(labels).ndim == 1:
            classes = [len(np.unique(labels[s])) for s in self.shards]
            out |= {"classes_per_client_min": int(min(classes)), "classes_per_client_max": int(max(classes))}
        return out


def _iid(samples: int, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.sort(part) for part in np.array_split(rng.permutation(samples), clients)]


def _dirichlet(labels: np.ndarray, clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Per class, shares drawn from Dir(alpha) over the clients; redrawn until no client is empty."""
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise KitError(f"partition dirichlet needs integer class labels, got y_train of shape {labels.shape} "
                       f"and dtype {labels.dtype}", "use partition: iid, or give class indices as labels")
    for _ in range(DIRICHLET_TRIES):
        shards: list[list[int]] = [[] for _ in range(clients)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            cuts = (np.cumsum(rng.dirichlet(np.full(clients, alpha))) * len(members)).astype(int)[:-1]
            for client, part in enumerate(np.split(members, cuts)):
                shards[client].extend(part.tolist())
        if min(len(s) for s in shards) > 0:
            return [np.sort(np.array(s, dtype=np.int64)) for s in shards]
    raise KitError(f"Dirichlet alpha {alpha} left some of {clients} clients without data in {DIRICHLET_TRIES} draws",
                   "raise alpha, or use fewer clients")


def _by_key(keys: np.ndarray, clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Each key (e.g. a speaker) lives on exactly one client; keys are dealt, largest first, to the
    client with the fewest samples so far (ties broken by a seeded shuffle)."""
    values, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    if len(values) < clients:
        raise KitError(f"the key has only {len(values)} distinct values for {clients} clients",
                       f"use at most {len(values)} clients, or another partition")
    order = rng.permutation(len(values))
    order = order[np.argsort(-counts[order], kind="stable")]
    loads, owner = np.zeros(clients, dtype=np.int64), np.empty(len(values), dtype=np.int64)
    for value in order:
        owner[value] = int(np.argmin(loads))
        loads[owner[value]] += counts[value]
    return [np.flatnonzero(owner[inverse] == client) for client in range(clients)]


def partition(settings: FederatedSettings, labels: np.ndarray, keys: dict[str, np.ndarray], seed: int) -> Partition:
    """Indices of each client's training samples. Raises KitError before any training on bad settings."""
    labels = np.asarray(labels)
    samples, clients = len(labels), settings.clients
    if samples < clients:
        raise KitError(f"{samples} training samples cannot be split among {clients} clients",
                       f"use at most {samples} clients, or give more training data")
    rng = np.random.default_rng([seed, 0xFED])
    if settings.partition == "iid":
        shards = _iid(samples, clients, rng)
    elif settings.partition == "dirichlet":
        shards = _dirichlet(labels, clients, settings.alpha, rng)
    else:
        if settings.key not in keys:
            known = ", ".join(sorted(keys)) or "none"
            raise KitError(f"partition by_key uses the data field '{settings.key}', which the data does not have "
                           f"(fields: {known})", "return a 'key_<name>' array (one value per training sample) "
                           "from the data builder or .npz, or fix 'key'")
        values = np.asarray(keys[settings.key])
        if len(values) != samples:
            raise KitError(f"data field '{settings.key}' has {len(values)} values for {samples} training samples",
                           "give one key value per training sample")
        shards = _by_key(values, clients, rng)
    return Partition(shards)
