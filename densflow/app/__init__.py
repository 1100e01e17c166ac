"""Case files, sweeps, figures and the ``densflow`` command line: the top layer, which
imports every other one and which none imports."""
