"""Container health check: GET /health (liveness) and exit 0 on 200, 1 otherwise.

Used by the image's HEALTHCHECK and docker-compose.yml; the slim image has no curl. /health never
touches the database or Redis, so a database outage does not make Docker restart the service
(readiness, /health/ready, is for load balancers). Usage: healthcheck.py [URL].
"""

import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8083/health"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a fixed http URL
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"health check of {url} failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
