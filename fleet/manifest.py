"""`Manifest`: one Kubernetes object as fleet passes it around, a JSON-compatible dict.

Defined once, at the bottom of the layers, because both stages that handle objects use it
and neither may import the other: `fleet.render` produces manifests, `fleet.engine`
applies them.
"""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]
