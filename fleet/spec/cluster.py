"""The cluster a bundle is rendered for, as renderers and templating see it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClusterContext:
    """Name and labels of one target cluster (no credentials: renderers never need them).

    `kube_version` is the cluster's Kubernetes version when known (for Helm's
    `.Capabilities.KubeVersion`); None lets the renderer use its default.
    """

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    kube_version: str | None = None
