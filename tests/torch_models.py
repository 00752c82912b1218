"""PyTorch builders for tests/test_torch.py, loaded by the kit's torch child process (torch imported inside)."""
import numpy as np

# A 1x1 convolution's weights (4 outputs x 3 input channels): the model's output is this matrix times
# each input's per-channel mean, so a channels-last input read in the wrong layout gives other numbers.
MIX = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, -1.0, 0.25]], np.float32)


def channel_mixer():
    """(N, 3, H, W) -> (N, 4): MIX @ the mean of each channel."""
    import torch
    from torch import nn

    conv = nn.Conv2d(3, 4, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(MIX[:, :, None, None]))
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def failing():
    raise ValueError("the builder failed on purpose")


def small_convnet():
    """(N, 3, 8, 8) -> (N, 4): two convolutions big enough for int4 (216 and 1,152 weights), pooled, a
    linear head; seeded by the kit's child, untrained (the search judges agreement with it)."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 4))
