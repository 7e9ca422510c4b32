"""Ray job entrypoint: train a style catalogue on the cluster this job runs on.

    ray job submit --working-dir . -- python jobs/train_catalogue.py jobs/configs/paper_styles.yaml

Same as ``fsg train CONFIG --address auto``; exits 1 if any style failed.
"""

from __future__ import annotations

import sys

from fsg_ray.app.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:], "--address", "auto"]))
