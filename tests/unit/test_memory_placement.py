"""Placing tensor buffers in an arena (tflite/memory_placement.py): TFLM's greedy planner reproduced, the
exact search, and the check that no two live buffers share a byte. Pure logic: no TensorFlow."""
import itertools

import numpy as np

from converter.tflite.memory_placement import Buffer, greedy, lower_bound, lowest_fit, overlapping, tighter


# -- placement --------------------------------------------------------------------------------------
def _random_buffers(rng, count: int, scopes: int = 8) -> list[Buffer]:
    buffers = []
    for key in range(count):
        first = int(rng.integers(0, scopes))
        buffers.append(Buffer(key, 16 * int(rng.integers(1, 12)), first, first + int(rng.integers(0, 4))))
    return buffers


def test_no_two_live_buffers_share_a_byte():
    rng = np.random.default_rng(1)
    for _ in range(200):
        buffers = _random_buffers(rng, int(rng.integers(1, 14)))
        for placement in (greedy(buffers), tighter(buffers, node_budget=2000)):
            assert overlapping(buffers, placement.offsets) == []
            assert all(offset % 16 == 0 for offset in placement.offsets.values())
            assert placement.arena == max(placement.offsets[b.key] + b.size for b in buffers)
            assert placement.arena >= lower_bound(buffers)
        assert tighter(buffers, node_budget=2000).arena <= greedy(buffers).arena


def test_overlap_check_catches_a_clash():
    a, b, c = Buffer(0, 32, 0, 1), Buffer(1, 32, 1, 2), Buffer(2, 32, 2, 3)
    assert overlapping([a, b, c], {0: 0, 1: 16, 2: 64}) == [(0, 1)]
    assert overlapping([a, b, c], {0: 0, 1: 32, 2: 0}) == []  # a and c are never live together


def test_exact_search_matches_every_order():
    """Lowest-fit over all orders reaches every packing; the search must find the best of them."""
    rng = np.random.default_rng(2)
    for _ in range(25):
        buffers = _random_buffers(rng, 6, scopes=4)
        best = min(lowest_fit(list(order), "all").arena for order in itertools.permutations(buffers))
        found = tighter(buffers)
        assert found.arena == best and found.optimal  # finished within its budget: proven optimal
        assert overlapping(buffers, found.offsets) == []


def test_greedy_breaks_size_ties_last_added_first():
    # three equal buffers; a, then b, then c added. TFLM places c first (at 0), then b, then a.
    a, b, c = Buffer(0, 32, 0, 1), Buffer(1, 32, 1, 2), Buffer(2, 32, 0, 2)
    assert greedy([a, b, c]).offsets == {2: 0, 1: 32, 0: 64}
