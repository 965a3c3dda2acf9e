"""The marker scan kernel against a slow, obvious reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medcloak_kernels.jpeg_markers import next_marker


def reference_next_marker(data: bytes, start: int) -> int:
    """Walk byte by byte: FF00 and FFD0-FFD7 belong to the scan, FF before FF is fill."""
    i = start
    while i + 1 < len(data):
        if data[i] != 0xFF:
            i += 1
        elif data[i + 1] == 0x00 or 0xD0 <= data[i + 1] <= 0xD7:
            i += 2
        elif data[i + 1] == 0xFF:
            i += 1
        else:
            return i
    return -1


def _kernel(data: bytes, start: int) -> int:
    return int(next_marker(np.frombuffer(data, dtype=np.uint8), start))


EDGE = [
    b"", b"\xff", b"\xff\xd9", b"\x00\xff\xd9", b"\xff\x00\xff\xd9", b"\xff\xd0\xff\xd7\xff\xd9",
    b"\xff\xff\xff\xd9", b"\xff\xff\xff", b"\x12\x34", b"\xff\x00", b"\xff\xd8", b"\xff\x01",
    b"\xff\xc4\x00\x02", b"\x00" * 100 + b"\xff\xda",
]


@pytest.mark.parametrize("data", EDGE)
@pytest.mark.parametrize("start", [0, 1, 2])
def test_edge_cases(data, start):
    assert _kernel(data, start) == reference_next_marker(data, start)


# bytes biased towards 0xFF and the codes that matter after it
_byte = st.sampled_from([0x00, 0xFF, 0xD0, 0xD7, 0xD8, 0xD9, 0xDA, 0xC4, 0x01, 0x12, 0xFE, 0xE1])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_byte, st.integers(0, 255)), max_size=200), st.integers(0, 210))
def test_random_inputs(values, start):
    data = bytes(values)
    assert _kernel(data, start) == reference_next_marker(data, start)


def test_large_random_buffer():
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 1 << 16, dtype=np.uint8)
    data[data == 0xFF] = 0x00  # no marker anywhere ...
    data[-2:] = (0xFF, 0xD9)  # ... but the last two bytes
    assert _kernel(data.tobytes(), 0) == len(data) - 2 == reference_next_marker(data.tobytes(), 0)
