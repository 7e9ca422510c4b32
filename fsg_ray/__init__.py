"""fsg-ray: the Fashion Style Generator (Jiang & Fu, IJCAI 2017) as a batch system on Ray.

Core (pure PyTorch, no Ray import): ``models``, ``losses``, ``algorithm``, ``baselines``.
Plumbing: ``config``, ``storage``, ``images``, ``transforms``, ``synthetic``.
Ray edges: ``data``. Entry points: ``cli`` (the ``fsg`` command), ``demo``.
"""

__version__ = "0.1.0"
