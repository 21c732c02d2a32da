"""`WWW-Authenticate` challenges (RFC 7235): which scheme, and its parameters.

Registries send `Basic realm="..."` or `Bearer realm="...",service="...",scope="..."`, and a
scope may itself hold commas (`repository:org/app:pull,push`), so parameters are read as
`key=token` or `key="quoted string"` pairs, never split on commas. Several challenges in one
header are separated by a comma before the next scheme name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(,)?')
_SCHEME = re.compile(rf"\s*,?\s*({_TOKEN})(?:\s+|$)")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-cased: "basic", "bearer", ...
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one `WWW-Authenticate` value; unparsable tails are dropped."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        while pos < len(header):
            param = _PARAM.match(header, pos)
            if param is None:
                break
            # a bare token followed by a space is the next scheme, not a parameter
            key, quoted, token, comma = param.groups()
            value = quoted if quoted is not None else token
            params[key.lower()] = re.sub(r"\\(.)", r"\1", value) if quoted is not None else value
            pos = param.end()
            if comma is None:
                break
        challenges.append(Challenge(scheme.group(1).lower(), params))
    return challenges
