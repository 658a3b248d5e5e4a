"""Parity: does a candidate backend compute what its reference computes?

* ``metrics``  — the per-output figures (cosine, relative L2, max abs) and Polygraphy-style error statistics;
                 the one implementation, also used by ``attnx.calibration.evaluate``;
* ``compare``  — tolerance policies per precision and the output-by-output verdict;
* ``report``   — the report structures (parity, layer-wise) and their JSON;
* ``inputs``   — seeded random inputs, the user's ``.npy`` / ``.npz``, and the shape/dtype checks;
* ``saved_io`` — a run's inputs and outputs saved (``--save-io``), checked and replayed (``--load-io``);
* ``layerwise`` / ``layerwise_torch`` — the first node (or PyTorch module) where a candidate departs.

A bundle's reference and inputs are decided above this package, in ``attnx.deploy.apis.parity``.
"""
