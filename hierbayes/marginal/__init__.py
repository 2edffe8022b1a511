"""The integrated-out (marginal) model: Gaussian group effects integrated out of the sampler
and drawn exactly afterwards.

For a Gaussian model, y_j ~ N(X_j b, V_j) with V_j = sigma^2 I + Z_j G Z_j' per group j of
the integrated factor; the matrix determinant lemma and the Woodbury identity give log|V_j|
and r_j'V_j^{-1} r_j from per-group sufficient statistics, so NUTS samples only b, the SDs,
the LKJ correlations and sigma, and a gradient costs O(J q^3) whatever the number of rows.

Modules, in the order the data flow through them:

- ``stats``: Design -> sufficient statistics; which factors are integrated out.
- ``layout``: the packed buffer's header (the one declaration of where everything lies).
- ``kernels`` (one factor) and ``nested`` (two nested factors): the per-group Woodbury step
  in numba, for the log-likelihood, its gradient and the exact draws.
- ``density``: Design + Priors -> ``PackedModel``; the log posterior and its gradient on the
  unconstrained scale, as C callbacks for nutpie and as ``loglik_and_grad`` for PyMC.
- ``graph``: the likelihood inside a PyMC model (the Op over the kernels; crossed designs in
  PyTensor arithmetic).
- ``run``: nutpie on the packed model -> DataTree.
- ``draws``: posterior -> exact group effects and per-group log-likelihood.

This package face imports nothing, so its modules never import each other through it.
"""
