"""Ray job entrypoint: restyle a product catalogue on the cluster this job runs on.

    ray job submit --working-dir . -- python jobs/restyle_catalogue.py \\
        --registry s3://my-bucket/fsg/registry --styles all \\
        --input s3://my-bucket/products --output s3://my-bucket/restyled --masks auto

Same as ``fsg restyle ARGS --address auto``; exits 1 if any output failed.
"""

from __future__ import annotations

import sys

from fsg_ray.app.main import main

if __name__ == "__main__":
    sys.exit(main(["restyle", *sys.argv[1:], "--address", "auto"]))
