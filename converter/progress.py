"""Progress of long work (training epochs) for whoever listens: the CLI prints it, tests and
library users hear nothing unless they subscribe."""
from __future__ import annotations

from typing import Callable, Optional

_listener: Optional[Callable[[str], None]] = None


def listen(listener: Optional[Callable[[str], None]]) -> None:
    global _listener
    _listener = listener


def report(message: str) -> None:
    if _listener is not None:
        _listener(message)


def epoch_callback(stage: str, epochs: int):
    """A Keras callback that reports each finished epoch with its loss."""
    import tf_keras as keras

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            report(f"  {stage}: epoch {epoch + 1}/{epochs}" + (f", loss {loss:.4f}" if loss is not None else ""))

    return EpochProgress()
