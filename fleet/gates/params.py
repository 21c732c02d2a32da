"""Reading a gate's parameters: each one checked, every problem a GateConfigError naming its key.

A gate's parameters come straight from YAML (`GateSpec.params`, camelCase), so a plugin
checks them when the commit is loaded. `GateParams` does that the same way for every gate:
an unknown key is an error with the closest known one as a hint (a typo'd `failurLimit`
must not silently fall back to the default), and each reader checks a type and a range.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from fleet.gates.model import GateConfigError
from fleet.spec.rollout_spec import GateSpec, parse_duration


class GateParams:
    """The parameters of one gate entry, read one key at a time."""

    def __init__(self, spec: GateSpec, known: Iterable[str]) -> None:
        self.type = spec.type
        self.values: dict[str, Any] = spec.params
        allowed = sorted(set(known))
        for key in self.values:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "known: " + ", ".join(allowed)
                raise GateConfigError(
                    f"unknown parameter {key!r} of a {self.type} gate ({hint})", key
                )

    def has(self, key: str) -> bool:
        return self.values.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.values.get(key)

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.values.get(key)
        if value is None:
            if required:
                raise GateConfigError(f"a {self.type} gate needs {key!r}", key)
            return default
        if not isinstance(value, str) or not value.strip():
            raise GateConfigError(f"{key} must be a non-empty string", key)
        return value

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int = 10_000) -> int:
        value = self.values.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise GateConfigError(f"{key} must be an integer, not {value!r}", key)
        if not minimum <= value <= maximum:
            raise GateConfigError(f"{key} must be between {minimum} and {maximum}", key)
        return value

    def number(self, key: str, value: Any = None) -> float:
        """A number (`value`, else the parameter `key`)."""
        found = self.values.get(key) if value is None else value
        if isinstance(found, bool) or not isinstance(found, int | float):
            raise GateConfigError(f"{key} must be a number, not {found!r}", key)
        return float(found)

    def duration(self, key: str, default: str) -> int:
        """Seconds, from a duration like "30s", "5m" (or a number of seconds)."""
        try:
            return parse_duration(self.values.get(key, default))
        except ValueError as err:
            raise GateConfigError(f"{key}: {err}", key) from None

    def boolean(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise GateConfigError(f"{key} must be true or false, not {value!r}", key)
        return value

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise GateConfigError(f"{key} must be a mapping", key)
        return value
