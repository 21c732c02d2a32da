"""Count DELETE requests from a test-bed cluster's audit log.

`tests/testbin/localfleet.py` starts every kube-apiserver with an audit policy that records
each delete (and deletecollection) request, one JSON line at the Metadata level, in
`DIR/NAME/logs/audit.log`. A test takes a `mark()` before a change and asks for the
`deletes(since=mark)` after it: "fleet deleted nothing" is then an assertion on what the API
server itself saw, not on fleet's own report. Deletes by the kube-controller-manager (the
garbage collector and the namespace controller) are left out unless asked for: they follow
from a delete fleet made, which is already counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CONTROLLERS = ("kube-controller-manager",)


@dataclass(frozen=True)
class DeleteRequest:
    resource: str  # plural, e.g. "configmaps"
    namespace: str | None
    name: str
    code: int
    user_agent: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"DELETE {self.resource} {where} -> {self.code} ({self.user_agent[:40]})"


class AuditLog:
    """The audit log of one test-bed cluster (by its kubeconfig: DIR/NAME.kubeconfig)."""

    def __init__(self, kubeconfig: Path, name: str) -> None:
        self.path = kubeconfig.parent / name / "logs" / "audit.log"
        if not self.path.parent.is_dir():
            raise AssertionError(
                f"{self.path.parent} does not exist: the cluster was not started by "
                "tests/testbin/localfleet.py (which turns on the audit log)"
            )

    def mark(self) -> int:
        """The current end of the log: what happened after it is what a test asks about."""
        return self.path.stat().st_size if self.path.exists() else 0

    def deletes(
        self, since: int = 0, *, namespace: str | None = None, controllers: bool = False
    ) -> list[DeleteRequest]:
        """DELETE requests completed after `since` (optionally in one namespace, or of the
        namespace itself when `namespace` names it)."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(since)
            lines = log.read().splitlines()
        found: list[DeleteRequest] = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            if event.get("stage") != "ResponseComplete":
                continue
            if event.get("verb") not in ("delete", "deletecollection"):
                continue
            agent = str(event.get("userAgent", ""))
            if not controllers and agent.startswith(CONTROLLERS):
                continue
            obj = event.get("objectRef") or {}
            request = DeleteRequest(
                str(obj.get("resource", "")),
                obj.get("namespace"),
                str(obj.get("name", "")),
                int((event.get("responseStatus") or {}).get("code", 0)),
                agent,
            )
            if namespace is not None and namespace not in (request.namespace, request.name):
                continue
            found.append(request)
        return found
