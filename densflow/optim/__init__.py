"""The optimisation loop, independent of any problem kind: line searches
(:mod:`~densflow.optim.linesearch`), the descent loop and its protocol
(:mod:`~densflow.optim.loop`), the result (:mod:`~densflow.optim.result`) and the
reporting of numerical failures (:mod:`~densflow.optim.failure`)."""
