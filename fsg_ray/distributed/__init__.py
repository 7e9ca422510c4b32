"""The Ray edges: the Ray session, Ray Data pipelines, the Ray Train catalogue trainer, the bulk
restyle job and the Ray Serve app. The only package that imports Ray; no math here."""
