"""Plumbing below the jobs: URIs, storage (local folders and S3), image decode/encode,
compositing, the style registry, pictures and synthetic data. No Ray import."""
