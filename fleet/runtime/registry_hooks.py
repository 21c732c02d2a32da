"""`POST /hooks/registry[/<token>]` of `fleet serve`: a registry push wakes the image loop.

The request is checked in this order, and the body is read only when the first checks
pass: no `FLEET_REGISTRY_WEBHOOK_TOKEN` set or the wrong token (neither the Bearer header
nor the path's last segment) -> 401; chunked or no `Content-Length` -> 411; over
`MAX_BODY` (1 MiB, the Git receiver's cap) -> 413. Then the payload is parsed
(`fleet.images.hooks`; malformed -> 400, nothing pushed -> 202 "ignored"), and the pushed
repositories are matched against the image policies in force: a match notes those
policies on the `ImageTrigger` (the image loop scans just them at once) and answers 202
with their names, no match answers 202 "ignored". The handler never scans itself: a slow
registry must not hold a request thread, and the scan runs only on the leader.
The token is never logged (`redact_path` is applied to every request line).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping

from fleet.images.hooks import (
    TOKEN_ENV,
    HookRejected,
    PushedImage,
    authorized,
    matching_policies,
    parse_pushes,
)
from fleet.registry.reference import ImageReference
from fleet.runtime.http import GuardedHandler

log = logging.getLogger(__name__)


class ImageTrigger:
    """The policies a registry push asked to scan now; the image loop takes them."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._pending: set[str] = set()

    def request(self, policies: Iterable[str]) -> None:
        with self._lock:
            self._pending.update(policies)
        self.wake.set()

    def take(self) -> set[str]:
        """The policies asked for since the last take (and clear the wake-up)."""
        with self._lock:
            taken, self._pending = self._pending, set()
            self.wake.clear()
        return taken


class PolicyView:
    """What the receiver needs of the fleet in force: its policies (name -> image) and the
    registry providers' normalisation. Both are read per request, so a new commit's
    policies apply to the next push."""

    def __init__(
        self,
        policies: Callable[[], Mapping[str, str]],
        normalize: Callable[[ImageReference], ImageReference],
    ) -> None:
        self.policies = policies
        self.normalize = normalize

    def match(self, pushed: list[PushedImage]) -> list[str]:
        return matching_policies(pushed, self.policies(), self.normalize)


def handle_registry_hook(
    handler: GuardedHandler, token: str | None, view: PolicyView, trigger: ImageTrigger
) -> None:
    """Answer one `POST /hooks/registry...` on `handler` (see the module docstring)."""
    address = handler.client_address[0]
    headers = {key: value for key, value in handler.headers.items()}
    if not authorized(token, handler.path, headers):
        why = f"{TOKEN_ENV} is not set" if not token else "wrong or missing token"
        log.warning("registry webhook from %s rejected: %s", address, why)
        handler.answer_early(401, f"unauthorized: {why}")
        return
    body = handler.read_bounded_body()
    if body is None:
        return
    try:
        pushed = parse_pushes(headers, body)
        names = view.match(pushed)
    except HookRejected as rejected:
        if rejected.status >= 400:
            log.warning("registry webhook from %s rejected: %s", address, rejected.reason)
        handler.answer_json(rejected.status, rejected.reason)
        return
    except Exception:  # the fleet in force could not be read: say so, do not crash
        log.exception("registry webhook from %s: matching the policies failed", address)
        handler.answer_json(500, "matching the image policies failed")
        return
    images = [str(image) for image in pushed]
    if not names:
        log.info("registry push of %s: no image policy follows it", ", ".join(images[:5]))
        handler.answer_json(202, "ignored: no image policy follows these images", images=images)
        return
    trigger.request(names)
    log.info("registry push of %s: scanning policies %s", ", ".join(images[:5]), ", ".join(names))
    handler.answer_json(202, "accepted", images=images, policies=names)
