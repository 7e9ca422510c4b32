"""fsg-ray: the Fashion Style Generator (Jiang & Fu, IJCAI 2017) as a batch system on Ray.

Layers, each a package; dependencies point down only (docs/architecture.md, enforced by
tests/test_layers.py):

- ``app``: the ``fsg`` command, one module per subcommand.
- ``distributed``: the only package that imports Ray (session, Ray Data, Ray Train, restyle
  job, Ray Serve).
- ``io``: URIs, storage (local, S3), image decode/encode, compositing, the style registry,
  pictures, synthetic data.
- ``core``: pure PyTorch: networks, losses, Algorithm 1, baselines, metrics, masks, inference.
- ``config``: every config tree and its one loader; imports nothing of ours but ``io.uri``.
"""

__version__ = "0.1.0"
