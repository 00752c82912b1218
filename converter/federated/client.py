"""The Flower ClientApp: the same code runs in Ray simulation and on a real SuperNode.

Only where a client's shard comes from differs: in simulation an object in Ray's store, indexed by
the node's `partition-id`; on a SuperNode the `.npz` named by its `data-file` node config
(`flower-supernode --node-config "partition-id=0 data-file='/path/client_0.npz'"`).
The server sends the model architecture (Keras JSON) and the training plan in every train message,
so a client needs nothing but its data and this module.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from ..system import tf_env  # noqa: F401  (Keras 2 before TensorFlow loads)
from .local_training import LocalPlan, train, unpack_arrays

Shard = tuple[np.ndarray, np.ndarray]
ShardSource = Callable[[Context], Shard]
_cache: dict[str, Shard] = {}  # per process: a client's shard is read once


def file_shards(context: Context) -> Shard:
    """A real SuperNode's shard: x and y arrays in the .npz its `data-file` node config names."""
    path = str(context.node_config.get("data-file", ""))
    if not path:
        raise ValueError("this SuperNode has no 'data-file' node config: start it with "
                         "--node-config \"partition-id=<i> data-file='<shard.npz>'\"")
    if path not in _cache:
        with np.load(path, allow_pickle=False) as archive:
            _cache[path] = (archive["x"], archive["y"])
    return _cache[path]


class RayShards:
    """Simulation shards: one list in Ray's object store, fetched once per worker process."""

    def __init__(self, reference):
        self.reference = reference

    def __call__(self, context: Context) -> Shard:
        wanted = f"{self.reference.hex()}/{partition_id_of(context)}"
        if wanted not in _cache:
            import ray

            for partition_id, shard in enumerate(ray.get(self.reference)):
                _cache[f"{self.reference.hex()}/{partition_id}"] = shard
        return _cache[wanted]


def partition_id_of(context: Context) -> int:
    return int(context.node_config["partition-id"])


def _limit_threads(cpus: int) -> None:
    """Keep TensorFlow to the CPUs Ray gave this client so parallel clients do not oversubscribe."""
    tf = tf_env.tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already started in this process; the first setting stays


def clip_when_asked(message: Message, context: Context, call_next) -> Message:
    """Flower's fixedclipping_mod, on train messages whose config carries a clipping norm (DP runs)."""
    config = message.content.config_records.get("config")
    if message.metadata.message_type == MessageType.TRAIN and config is not None and KEY_CLIPPING_NORM in config:
        return fixedclipping_mod(message, context, call_next)
    return call_next(message, context)


def build_client_app(shards: ShardSource) -> ClientApp:
    app = ClientApp(mods=[clip_when_asked])

    @app.query()
    def describe(message: Message, context: Context) -> Message:
        """Which partition this node holds: the server samples partitions with its own seeded RNG."""
        x, _ = shards(context)
        metrics = MetricRecord({"partition-id": partition_id_of(context), "num-examples": len(x)})
        return Message(RecordDict({"metrics": metrics}), reply_to=message)

    @app.train()
    def local_fit(message: Message, context: Context) -> Message:
        config = message.content["config"]
        _limit_threads(max(1, int(config.get("cpus-per-client", 1))))
        x, y = shards(context)
        partition_id = partition_id_of(context)
        plan = LocalPlan(model_json=str(config["model-json"]), loss=str(config["loss"]),
                         epochs=int(config["local-epochs"]), batch_size=int(config["batch-size"]),
                         learning_rate=float(config["learning-rate"]), proximal_mu=float(config["proximal-mu"]),
                         freeze_batch_norm=bool(config.get("freeze-batch-norm", True)),
                         # one stream per (run seed, round, client): reproducible whichever worker runs it
                         seed=int(config["seed"]) * 1_000_003 + int(config["server-round"]) * 10_007 + partition_id)
        fixed = unpack_arrays(bytes(config["fixed-weights"])) if "fixed-weights" in config else []
        received = message.content["arrays"].to_numpy_ndarrays()
        weights, loss = train(plan, received, fixed, x, y)
        # the update's L2 norm before any DP clipping: what a clip_norm should be matched to
        norm = float(np.sqrt(sum(np.sum(np.square(w.astype(np.float64) - r)) for w, r in zip(weights, received))))
        metrics = MetricRecord({"num-examples": len(x), "unit-weight": 1, "train-loss": loss, "update-norm": norm})
        return Message(RecordDict({"arrays": ArrayRecord(weights), "metrics": metrics}), reply_to=message)

    return app


# The app a real SuperNode runs (named in the Flower app's pyproject.toml: converter.federated.client:app).
app = build_client_app(file_shards)
