"""Helm charts resolved once per commit: range -> version -> digest (OCI registries here,
HTTP(S) chart repositories in `fleet.registry.chart_repo`).

`helm.chart: oci://host/charts/web` with `helm.version: ">=1.0 <2"` names whatever the
registry's highest matching tag is when helm runs, so two clusters (or two waves) could
render different charts from one commit. `ChartPins` resolves each (chart, version) of a
commit once, when it is targeted: the registry's tags (through its provider's
`list_tags`), the highest that matches the range (`fleet.source.semver`, as for Git tag
ranges; helm writes `+` as `_` in OCI tags), then that tag's manifest digest. The pin goes
into the deployment id (a new matching tag, or a tag pushed again with other content,
changes it at the next load) and into the render request, so helm pulls exactly those
bytes (`oci://host/charts/web@sha256:...` with `--version`). An exact version is pinned
too (its tag can be pushed again). Charts from a `helm.repo` index are pinned the same
way (`fleet.registry.chart_repo`: the version and the archive's sha256 from the index).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fleet.errors import FleetError
from fleet.registry.access import Registries
from fleet.registry.chart_repo import (
    Index,
    fetch_index,
    repo_chart_key,
    repo_charts,
    resolve_repo_chart,
)
from fleet.source.semver import parse_range, parse_tag_version
from fleet.spec.bundle_options import BundleOptions, HelmOptions
from fleet.spec.bundles import Bundle


@dataclass(frozen=True)
class ChartPin:
    chart: str  # oci://host/path as written, or <helm.repo>/<helm.chart>
    wanted: str  # helm.version as written ("" when unset: the highest release)
    version: str  # the chart version helm gets (`--version`)
    digest: str  # the manifest digest of that version's tag

    def __str__(self) -> str:
        return f"{self.chart}@{self.wanted or '*'}={self.version}@{self.digest}"


def oci_charts(options: BundleOptions) -> Iterator[tuple[str, str]]:
    """(chart, version) of every `oci://` chart the bundle's options may render (the base
    `helm` and each targetCustomization's), skipping values templated per cluster."""
    base = options.helm or HelmOptions()
    seen: set[tuple[str, str]] = set()
    helms = [base] + [c.helm for c in options.target_customizations if c.helm is not None]
    for helm in helms:
        chart = helm.chart or base.chart
        version = helm.version if helm.version is not None else base.version
        if not chart or not chart.startswith("oci://") or helm.repo:
            continue
        key = (chart, version or "")
        if "${" in chart or "${" in key[1] or key in seen:
            continue
        seen.add(key)
        yield key


@dataclass
class ChartPins:
    """The pins of one commit, each resolved once (shared by every bundle naming it)."""

    registries: Registries
    pins: dict[tuple[str, str], ChartPin] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)  # repo -> its index, read once

    @classmethod
    def preset(cls, registries: Registries, pins: Iterable[ChartPin]) -> ChartPins:
        """Pins another process resolved (a worker gets the scheduler's, through Redis,
        so it renders the commit exactly as the scheduler targeted it)."""
        return cls(registries, {(p.chart, p.wanted): p for p in pins})

    def all(self) -> list[ChartPin]:
        return sorted(self.pins.values(), key=str)

    def pin(self, chart: str, wanted: str) -> ChartPin:
        found = self.pins.get((chart, wanted))
        if found is None:
            found = resolve_chart(self.registries, chart, wanted)
            self.pins[(chart, wanted)] = found
        return found

    def pin_repo(self, repo: str, chart: str, wanted: str) -> ChartPin:
        """The pin of a chart from a `helm.repo` index (the index read once per repo)."""
        key = repo_chart_key(repo, chart)
        found = self.pins.get((key, wanted))
        if found is None:
            index = self.indexes.get(repo)
            if index is None:
                index = self.indexes[repo] = fetch_index(repo, self.registries.settings)
            version, digest = resolve_repo_chart(index, repo, chart, wanted)
            found = self.pins[(key, wanted)] = ChartPin(key, wanted, version, digest)
        return found

    def bundle_pins(self, options: BundleOptions) -> list[ChartPin]:
        """Every pin the options' charts need (OCI and repository charts)."""
        pins = [self.pin(c, v) for c, v in oci_charts(options)]
        return pins + [self.pin_repo(r, c, v) for r, c, v in repo_charts(options)]

    def identity(self, bundle: Bundle) -> str:
        """The bundle's pins as one string for its deployment id ("" without remote charts)."""
        try:
            return " ".join(str(pin) for pin in self.bundle_pins(bundle.options))
        except FleetError as err:
            raise type(err)(
                f"bundle {bundle.name!r}: {err.reason}", file=bundle.options_file
            ) from None

    def versions(self, bundle: Bundle) -> tuple[tuple[str, str, str, str], ...]:
        """(chart, wanted, version, digest) for the render request of a unit of `bundle`."""
        pins = self.bundle_pins(bundle.options)
        return tuple((p.chart, p.wanted, p.version, p.digest) for p in pins)


def resolve_chart(registries: Registries, chart: str, wanted: str) -> ChartPin:
    client, reference = registries.resolve(chart)
    repository = reference.repository
    if wanted and parse_tag_version(wanted) is not None:
        tag = wanted.replace("+", "_")
    else:
        semver_range = parse_range(wanted or ">=0.0.0")
        if semver_range is None:
            raise FleetError(f"helm.version {wanted!r} of {chart} is not a version or range")
        tags = client.provider.list_tags(client, repository)
        by_version = {t.replace("_", "+"): t for t in tags}
        best = semver_range.best(by_version)
        if best is None:
            raise FleetError(f"no version of {chart} matches {wanted or 'any release'}")
        tag = by_version[best]
    info = client.head_manifest(repository, tag)
    return ChartPin(chart, wanted, tag.replace("_", "+"), info.digest)
