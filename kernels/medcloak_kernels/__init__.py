"""numba kernels of medcloak: pure functions over numpy arrays, no I/O, never importing medcloak.

The DICOM metadata core needs no kernel; the JPEG block, text-mask and defacing kernels land here.
"""
