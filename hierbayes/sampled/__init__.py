"""The model with every group effect sampled, as data for numba (any family, any blocks):
nutpie samples it with no per-model compile step, as it does the integrated-out model.

- ``likelihood``: each family's log density of a row and its derivatives.
- ``density``: Design + Priors -> ``SampledModel``; the log posterior and its gradient.
- ``run``: nutpie on it -> DataTree with the PyMC model's names.

This package face imports nothing, so its modules never import each other through it.
"""
