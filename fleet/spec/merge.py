"""Deep merge with Helm's and Rancher Fleet's rule: mappings merge, everything else replaces."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: `over` on top of `base`; nested mappings merge, lists and scalars replace.

    Neither input is modified, and no mutable value of `over` is shared with the result's
    merged sub-mappings (sub-dicts are rebuilt), so callers may cache the result.
    """
    merged: dict[str, Any] = dict(base)
    for key, value in over.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged
