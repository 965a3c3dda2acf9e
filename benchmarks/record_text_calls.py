"""A pytest plugin that records every frame given to the text detector during a test run, for
``compare_text_detect.py --record`` (two versions of the detector on the unit tests' frames).

Run: ``MEDCLOAK_RECORD_TEXT=/tmp/calls.pkl PYTHONPATH=src:kernels:benchmarks python -m pytest
-p record_text_calls tests/test_text_detect.py ...``. Each call of
``medcloak.pixels.text._detect`` (what every route to the detector ends in) is kept as
``(frame, {"bits_stored": ...})``; the pickle is written at the end of the run. The recorded
frames are the tests' own (synthetic and pydicom's test files), nothing else.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

CALLS: list = []


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    from medcloak.pixels import text

    inner = text._detect

    def recording(image, bits_stored, record=None):  # type: ignore[no-untyped-def]
        CALLS.append((np.array(image, copy=True), {"bits_stored": bits_stored}))
        return inner(image, bits_stored, record)

    text._detect = recording


def pytest_unconfigure(config) -> None:  # type: ignore[no-untyped-def]
    path = os.environ.get("MEDCLOAK_RECORD_TEXT")
    if path:
        with open(path, "wb") as fh:
            pickle.dump(CALLS, fh, protocol=5)
