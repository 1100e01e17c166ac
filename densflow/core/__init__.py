"""The grid core: :class:`~densflow.core.grid.Grid`, the difference and Laplacian
operators with their pseudo-inverses (:mod:`~densflow.core.operators`), the periodic
wavelet bases (:mod:`~densflow.core.wavelets`), input checks
(:mod:`~densflow.core.validation`) and the state a problem hands to the loop
(:mod:`~densflow.core.state`)."""
