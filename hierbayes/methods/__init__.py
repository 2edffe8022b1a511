"""The ways of sampling a model, each behind one contract (``base.Method``: ``applies``,
``pack``, ``run``, ``complete``), as PyMC's external samplers are:

- ``integrated``: nutpie with Gaussian group effects integrated out (``method="marginal"``);
- ``full``: nutpie with every group effect sampled, any family;
- ``laplace``: nutpie with a GLMM's effects integrated out by a Laplace approximation;
- ``gibbs``: exact conditional draws in turn, for well-informed crossed one-term blocks;
- ``pymc``: NUTS on the PyMC model (PyMC's own sampler, or nutpie compiling it).

``choice`` picks one and says why; ``nutpie`` is the adapter to nutpie (its only contact with
nutpie's internals); ``warm`` compiles every kernel ahead of the first fit. The kernels they run
live below: ``core``, ``marginal``, ``sampled``.

This package face imports nothing, so its modules never import each other through it.
"""
