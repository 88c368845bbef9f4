"""``BlockNet``: the nn.Module an arch string describes (see ``arch.py`` for the grammar)."""

from __future__ import annotations

from torch import Tensor, nn

from edgecompress.students.arch import parse_arch, scale_channels
from edgecompress.students.block_types import get_block


class BlockNet(nn.Module):
    """A student built from an arch string: blocks -> global average pool -> linear classifier."""

    def __init__(self, arch: str, num_classes: int, in_chans: int = 3, width_mult: float = 1.0) -> None:
        super().__init__()
        blocks = parse_arch(arch)
        layers: list[nn.Module] = []
        cin = in_chans
        for b in blocks:
            # The stem (first block) and a final 1x1 head are not thinned below 8 channels.
            cout = scale_channels(b.channels, width_mult)
            for i in range(b.repeats):
                layers.append(get_block(b.type).module(b, cin, cout, b.stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = cin
        self.classifier = nn.Linear(cin, num_classes)
        # Tang-style alignment wants an early, still high-resolution map: the output of the
        # second layer (first after the stem) when there is one.
        self.low_level_layer = "blocks.1" if len(layers) > 1 else "blocks.0"

    def forward_features(self, x: Tensor) -> Tensor:
        return self.pool(self.blocks(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))
