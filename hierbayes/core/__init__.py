"""The numba core every method shares, and that imports none of them: the packed buffer's
layout (``layout``), the small parameters on the unconstrained scale and their priors
(``parameters``), each family's log-likelihood of a row (``likelihood``), the rows' linear
predictor and its way back (``rows``), small dense linear algebra (``linalg``), and the
posterior's names and dims (``posterior``).

This package face imports nothing, so its modules never import each other through it.
"""
