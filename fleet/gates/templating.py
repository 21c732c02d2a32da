"""`{{cluster}}`-style substitutions in a gate's query or URL, checked when the gate is built.

Gates name the cluster they measure in their query or URL: `{{cluster}}`, `{{namespace}}`
(the bundle's namespace on that cluster), `{{labels.KEY}}` (a cluster label) are per
cluster; `{{bundle}}`, `{{wave}}` and `{{clusters}}` (every cluster of the wave) are the
same for the whole wave, and so is `{{namespace}}` when all its clusters share one. An
unknown name is a GateConfigError when the commit is loaded, not an empty string at
measurement time. How a value is escaped depends on where it goes (a PromQL string, a
URL), so `GateTemplate.render` takes the escaping from the gate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleet.gates.model import GateConfigError, GateContext, GateTarget

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_.\-/]*)\s*\}\}")
PER_CLUSTER_NAMES = ("cluster", "namespace")
WAVE_NAMES = ("bundle", "wave", "clusters")
LABEL_PREFIX = "labels."


class MissingValue(LookupError):
    """A placeholder has no value for this cluster (a label it does not have)."""


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str  # "cluster", "labels.region", ...
    start: int  # where `{{` is in the text
    end: int

    @property
    def per_cluster(self) -> bool:
        """Needs one cluster (`{{namespace}}` does not: the wave's clusters usually share it)."""
        return self.name == "cluster" or self.name.startswith(LABEL_PREFIX)


@dataclass(frozen=True, slots=True)
class GateTemplate:
    """A text with placeholders, checked: every name is known (and, in a whole-wave
    template, none needs one cluster)."""

    text: str
    placeholders: tuple[Placeholder, ...]

    @classmethod
    def parse(
        cls, text: str, key: str, *, per_cluster: bool = True, allowed: tuple[str, ...] = ()
    ) -> GateTemplate:
        """`allowed`: the names this gate offers (default: all); `key` for errors."""
        names = allowed or (*PER_CLUSTER_NAMES, "labels", *WAVE_NAMES)
        found = []
        for match in PLACEHOLDER.finditer(text):
            placeholder = Placeholder(match.group(1), match.start(), match.end())
            is_label = placeholder.name.startswith(LABEL_PREFIX) and "labels" in names
            if placeholder.name not in names and not is_label:
                known = ", ".join("{{" + n + "}}" for n in names if n != "labels")
                raise GateConfigError(
                    f"unknown substitution {match.group(0)} in {key} (known: {known}"
                    + (", {{labels.KEY}})" if "labels" in names else ")"),
                    key,
                )
            if placeholder.name == LABEL_PREFIX:
                raise GateConfigError(f"{{{{labels.KEY}}}} needs a label key in {key}", key)
            if placeholder.per_cluster and not per_cluster:
                raise GateConfigError(
                    f"{match.group(0)} in {key} needs one cluster: set perCluster: true, "
                    "or use {{clusters}}",
                    key,
                )
            found.append(placeholder)
        leftover = PLACEHOLDER.sub("", text)
        if "{{" in leftover:
            raise GateConfigError(f"unclosed or empty '{{{{' in {key}", key)
        return cls(text, tuple(found))

    def render(
        self,
        lookup: Callable[[str], str],
        escape: Callable[[Placeholder, str], str],
    ) -> str:
        """The text with each placeholder replaced by `escape(placeholder, lookup(name))`;
        MissingValue propagates."""
        parts = []
        position = 0
        for placeholder in self.placeholders:
            parts.append(self.text[position : placeholder.start])
            parts.append(escape(placeholder, lookup(placeholder.name)))
            position = placeholder.end
        parts.append(self.text[position:])
        return "".join(parts)


def target_values(ctx: GateContext, target: GateTarget | None) -> Callable[[str], str]:
    """The lookup for one cluster of the wave (`target`), or the whole wave (None).

    `{{clusters}}` is the cluster names joined with `|` (cluster names never contain `|`,
    so a gate that needs to escape each one for its own syntax may split on it).
    """
    wave: Mapping[str, str] = {
        "bundle": ctx.bundle,
        "wave": ctx.wave,
        "clusters": "|".join(t.cluster for t in ctx.targets),
    }

    def lookup(name: str) -> str:
        if name in wave:
            return wave[name]
        if target is None:
            if name == "namespace":
                namespaces = sorted({t.namespace for t in ctx.targets})
                if len(namespaces) == 1:
                    return namespaces[0]
                raise MissingValue(
                    f"the wave's clusters use different namespaces ({', '.join(namespaces)}): "
                    "set perCluster: true"
                )
            raise MissingValue(f"{{{{{name}}}}} needs one cluster")
        if name == "cluster":
            return target.cluster
        if name == "namespace":
            return target.namespace
        label = name.removeprefix(LABEL_PREFIX)
        if label in target.labels:
            return target.labels[label]
        raise MissingValue(f"cluster {target.cluster} has no label {label}")

    return lookup
