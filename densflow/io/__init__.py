"""Run files: the HDF5 layout and its low-level safety (:mod:`~densflow.io.h5io`),
reading (:mod:`~densflow.io.runfile`) and writing them (:mod:`~densflow.io.recorder`,
:mod:`~densflow.io.runrecord`, :mod:`~densflow.io.runlayout`) and resuming them
(:mod:`~densflow.io.resume`)."""
