"""numba kernels of medcloak: pure functions over numpy arrays, no I/O, never importing medcloak.

Modules: ``jpeg_markers`` (marker scanning in entropy-coded data). Each kernel has a slow reference
implementation in ``tests/kernels`` that it is compared with on random and edge-case inputs.
"""
