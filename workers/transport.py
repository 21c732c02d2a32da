"""kombu's Redis transport with one fix, so a Redis restart never kills a worker.

When Redis goes away while tasks are unacknowledged, Celery closes the broker connection
and kombu's channel, on close, tries to restore the unacked messages through a connection
pool it builds from `self.connection.client` - which the closing connection has already
set to None. The resulting AttributeError is not one of the transport's connection
errors, so Celery treats it as an "Unrecoverable error" and the worker stops (and with the
threads pool, hangs). Here a channel whose connection is closed raises redis's
ConnectionError instead: Celery ignores it while closing, reconnects to the new Redis, and
a late ack on the old channel is a lost ack, which `acks_late` already tolerates (the
task is idempotent; the scheduler re-dispatches from the clusters' inventories).
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("broker connection already closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel
