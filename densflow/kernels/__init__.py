"""Compiled kernels (numba): the loops behind the grid operators, wavelet transforms,
metric diagonals, energy states and Newton's fused 1D solve.

This layer is the lowest: it imports nothing of the package but its own modules. Each
kernel is compiled on first use and cached on disk (``cache=True``).
"""
