"""The MLPerf Tiny keyword-spotting DS-CNN (49x10 MFCC -> 12 classes) as a PyTorch module.

The layers of the MLPerf Tiny reference (mlcommons/tiny keyword_spotting/keras_model.py, "ds_cnn"):
a 10x4 stride-2 convolution, four depthwise-separable blocks (3x3 depthwise + 1x1 pointwise, each with
batch norm and ReLU), average pooling over the 25x5 map and a 12-way classifier (logits; argmax is the
class). PyTorch is channels-first: the module takes (N, 1, 49, 10); the kit feeds it the data's
channels-last (N, 49, 10, 1) through litert-torch's to_channel_last_io (recipe: channels_last: true),
so the firmware feeds the same (49, 10, 1) MFCC layout as for the Keras model.

`build_model(x_train, y_train, epochs)` trains briefly (Adam, seeded) on the features the kit passes
(models/recipes/torch_kws.yaml); the kit calls it in its torch child process.
"""
from __future__ import annotations

import numpy as np

FILTERS = 64
CLASSES = 12


def ds_cnn(filters: int = FILTERS, classes: int = CLASSES):
    import torch
    from torch import nn

    def block():
        return [nn.Conv2d(filters, filters, 3, padding=1, groups=filters, bias=False), nn.BatchNorm2d(filters),
                nn.ReLU(), nn.Conv2d(filters, filters, 1, bias=False), nn.BatchNorm2d(filters), nn.ReLU()]

    torch.manual_seed(0)
    return nn.Sequential(
        # Keras' padding="same" for a 10x4 kernel, stride 2, on 49x10: 4 rows above, 5 below, 1 column each side
        nn.ZeroPad2d((1, 1, 4, 5)), nn.Conv2d(1, filters, (10, 4), stride=2, bias=False), nn.BatchNorm2d(filters),
        nn.ReLU(), *block(), *block(), *block(), *block(),
        nn.AvgPool2d((25, 5)), nn.Flatten(), nn.Linear(filters, classes))


def build_model(x_train: np.ndarray | None = None, y_train: np.ndarray | None = None, epochs: int = 8,
                batch_size: int = 32, learning_rate: float = 3e-3, seed: int = 0):
    """The DS-CNN, trained for `epochs` on (N, 49, 10, 1) features when the kit passes them."""
    import torch

    model = ds_cnn()
    if x_train is None or epochs == 0:
        return model.eval()
    torch.manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(x_train, (0, 3, 1, 2)), dtype=np.float32))
    y = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            optimizer.zero_grad()
            loss(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()
