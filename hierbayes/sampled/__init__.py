"""The model with group effects sampled, as data for numba (any family, any blocks): nutpie
samples it with no per-model compile step, as it does the integrated-out model.

- ``density``: Design + Priors -> ``SampledModel``; the log posterior and its gradient (each
  family's rows from ``core.likelihood``; with crossed factors of a Gaussian model the largest
  factor integrated out by ``marginal.crossed``).
- ``laplace``: the GLMM variant, one factor's effects integrated out by a Laplace
  approximation, and the draws from it.

It reads ``core`` and ``marginal``; nothing below reads it. This package face imports
nothing, so its modules never import each other through it.
"""
