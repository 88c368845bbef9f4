"""Peak activation memory by liveness over the execution order.

Every kernel writes one buffer. A buffer lives from the node that writes it to the last node
that reads it (or reads an alias of it: a fused BN/ReLU, a flatten). At each step the live
buffers are summed; the peak is the largest sum. A residual branch's input therefore stays
alive across the whole branch, which is why ResNets peak higher than plain chains of the same
widths. This is a greedy runtime with no in-place reuse across different shapes: an upper bound
for arena allocators that reuse freed blocks, exact for the no-reuse case.
"""

from __future__ import annotations

from edgecompress.cost.layers import LayerCost


def buffer_lifetimes(costs: list[LayerCost]) -> dict[str, tuple[int, int, int]]:
    """Buffer owner name -> (step written, last step read, elements)."""
    owner: dict[str, str] = {}
    life: dict[str, list[int]] = {}
    for i, c in enumerate(costs):
        if c.alias_of is not None and c.alias_of in owner:
            owner[c.name] = owner[c.alias_of]
        else:
            owner[c.name] = c.name
            life[c.name] = [i, i, c.out_elems]
        for src in c.inputs:
            if src in owner:
                life[owner[src]][1] = max(life[owner[src]][1], i)
    if costs:  # the network output is alive until the end
        life[owner[costs[-1].name]][1] = len(costs) - 1
    return {k: (v[0], v[1], v[2]) for k, v in life.items()}


def peak_activation_elems(costs: list[LayerCost]) -> tuple[int, int]:
    """(peak live elements, step index of the peak)."""
    lifetimes = buffer_lifetimes(costs)
    n = len(costs)
    live = [0] * (n + 1)
    for first, last, elems in lifetimes.values():
        live[first] += elems
        live[last + 1] -= elems
    best, at, acc = 0, 0, 0
    for i in range(n):
        acc += live[i]
        if acc > best:
            best, at = acc, i
    return best, at
