"""The integrated-out (marginal) model: Gaussian group effects integrated out of the sampler
and drawn exactly afterwards.

For a Gaussian model, y_j ~ N(X_j b, V_j) with V_j = sigma^2 I + Z_j G Z_j' per group j of
the integrated factor; the matrix determinant lemma and the Woodbury identity give log|V_j|
and r_j'V_j^{-1} r_j from per-group sufficient statistics, so NUTS samples only b, the SDs,
the LKJ correlations and sigma, and a gradient costs O(J q^3) whatever the number of rows.

Modules, in the order the data flow through them:

- ``stats``: Design -> sufficient statistics; which factors are integrated out.
- ``kernels`` (one factor) and ``nested`` / ``nested_slopes`` (two nested factors): the
  per-group Woodbury step in numba, for the log-likelihood, its gradient and the exact draws
  (``nested_draws``); ``crossed``: crossed factors with the largest one integrated out and the
  others' effects given (the sampled model's likelihood).
- ``density``: Design + Priors -> ``PackedModel`` (``core.layout``'s buffer); the log
  posterior and its gradient on the unconstrained scale, for nutpie and for PyMC.
- ``graph``: the likelihood inside a PyMC model (the Op over the kernels; crossed designs in
  PyTensor arithmetic).
- ``draws``: posterior -> exact group effects and per-group log-likelihood.

It reads ``core`` only; the methods (``hierbayes.methods``) run it.
This package face imports nothing, so its modules never import each other through it.
"""
