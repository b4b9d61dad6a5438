"""Settings for the REST benchmark's server: the real settings, with a URLconf that adds the
floor view (bench/floor_urls.py). The product itself never routes the floor."""

from secureconnect.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor_urls"
