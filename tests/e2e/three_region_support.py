"""The three-cluster distributed fleet several e2e modules share: the session's test
clusters dev-eu, prod-eu (region eu) and prod-us (region us), one `fleet worker` per
region and one `fleet serve`, each module in its own Redis database.

Why here: the dashboard, notification and explain tests all need exactly this fleet and
set it up the same way; one copy keeps their definitions and start-up alike.
"""

from __future__ import annotations

from tests.e2e.dist_support import Distributed
from tests.support.servers import RedisServer

CLUSTERS = ("dev-eu", "prod-eu", "prod-us")


def definition(name: str, extra: str = "") -> str:
    """The Fleet definition of the three clusters, bundles `apps/*`, then `extra` (YAML
    at the top level: `notifiers:` ...)."""
    return f"""\
apiVersion: fleet-gitops.io/v1alpha1
kind: Fleet
name: {name}
clusters:
  - name: dev-eu
    labels: {{env: dev, region: eu}}
  - name: prod-eu
    labels: {{env: prod, region: eu}}
  - name: prod-us
    labels: {{env: prod, region: us}}
bundles:
  paths: [apps/*]
{extra}"""


def redis_db(redis_server: RedisServer, db: int) -> str:
    """The URL of database `db` of the test bed's Redis (one per module)."""
    return redis_server.url.rsplit("/", 1)[0] + f"/{db}"


def start_three_regions(dist: Distributed, *serve_args: str) -> None:
    """A worker for eu, one for us, then `fleet serve` with `serve_args`."""
    dist.start_worker("eu", "eu")
    dist.start_worker("us", "us")
    dist.start_serve(*serve_args)
