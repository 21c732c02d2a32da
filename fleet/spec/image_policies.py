"""The definition's `imagePolicies` and `imageUpdates` (Flux's ImagePolicy and
ImageUpdateAutomation, written once for the whole fleet).

A policy names one image repository and the rule that picks its newest tag: `semver`,
`numerical` or `alphabetical`, after the `exclusionList` and an optional `filterTags`
regex (with `extract`, Flux's shape). `fleet.images.policy` applies the rule,
`fleet.images.scan` lists the tags; markers in bundle files name a policy by `name`.

What can be checked without other layers is checked here, so each problem has its own
file:line: a regex that does not compile (or is over `MAX_PATTERN` characters, so a
pattern from Git cannot make the scanner slow), an `extract` that names a group the
pattern does not have, more or fewer than one policy kind, an image with a tag or digest.
What needs the semver grammar (`fleet.source`) or the registry plugins (which host an
entry without an address serves) is checked by `fleet.images.checks` when a commit loads.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from fleet.spec.bundle_options import StrictModel
from fleet.spec.rollout_spec import Duration

MAX_PATTERN = 1000  # characters of one regex from Git
DEFAULT_EXCLUSIONS = (r"^.*\.sig$",)  # Flux's default: cosign signature tags
DEFAULT_UPDATE_INTERVAL = "5m"

# `$name`, `${name}`, `$1` in an extract template (Go's Regexp.Expand syntax); `$$` is a `$`
TEMPLATE_REF = re.compile(r"\$(?:\{(\w+)\}|(\w+)|(\$))")
# distribution's repository grammar, optional host[:port]; no tag, no digest
_IMAGE = re.compile(
    r"^(?:(?P<host>[A-Za-z0-9.-]+(?::[0-9]{1,5})?|localhost(?::[0-9]{1,5})?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*)$"
)
_BRANCH = re.compile(r"^(?!-)(?!/)(?!.*\.\.)(?!.*//)(?!.*\.lock$)[A-Za-z0-9._/-]{1,200}(?<!/)$")

Pattern = Annotated[str, Field(min_length=1, max_length=MAX_PATTERN)]


def compile_pattern(pattern: str, what: str) -> re.Pattern[str]:
    """The compiled regex, or ValueError (a file:line problem) saying why not."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"{what} is over {MAX_PATTERN} characters")
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{what} {pattern!r} is not a valid regular expression: {err}") from None


def template_groups(template: str) -> list[str | int]:
    """The groups an extract template refers to (names, or numbers for `$1`)."""
    found: list[str | int] = []
    for match in TEMPLATE_REF.finditer(template):
        name = match.group(1) or match.group(2)
        if name is not None:
            found.append(int(name) if name.isdigit() else name)
    return found


def image_host(image: str) -> str:
    """`host[:port]` of a policy's image ("" when it names none: Docker Hub's)."""
    head, slash, _ = image.partition("/")
    if slash and ("." in head or ":" in head or head == "localhost"):
        return head.lower()
    return ""


class TagFilter(StrictModel):
    """`filterTags`: only tags `pattern` matches (searched, as Go's regexp does: anchor it
    with `^...$`); `extract` (`$name`, `${name}`, `$1`) is the value the policy orders,
    default the tag itself (Flux's default)."""

    pattern: Pattern
    extract: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)

    @model_validator(mode="after")
    def _compiles(self) -> TagFilter:
        compiled = compile_pattern(self.pattern, "filterTags.pattern")
        for group in template_groups(self.extract or ""):
            missing = (
                group > compiled.groups
                if isinstance(group, int)
                else group not in compiled.groupindex
            )
            if missing:
                raise ValueError(
                    f"filterTags.extract refers to group {group!r}, which the pattern does not have"
                )
        return self

    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern)


class SemverPolicy(StrictModel):
    range: str = Field(
        min_length=1,
        max_length=MAX_PATTERN,
        description="A semver range (`>=1.0.0 <2`, `^1.2`, `~1.4`, `1.x`); pre-releases "
        "only when the range names one.",
    )


class OrderPolicy(StrictModel):
    order: Literal["asc", "desc"] = Field(
        default="asc",
        description="asc: the highest (numerical) or last (alphabetical) wins; desc: the "
        "lowest or first.",
    )


class PolicyKind(StrictModel):
    """Exactly one of `semver`, `numerical`, `alphabetical`."""

    semver: SemverPolicy | None = None
    numerical: OrderPolicy | None = None
    alphabetical: OrderPolicy | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PolicyKind:
        given = [k for k in ("semver", "numerical", "alphabetical") if getattr(self, k)]
        if len(given) != 1:
            found = f" (got {', '.join(given)})" if given else ""
            raise ValueError(
                "a policy needs exactly one of 'semver', 'numerical' or 'alphabetical'" + found
            )
        return self

    @property
    def kind(self) -> Literal["semver", "numerical", "alphabetical"]:
        if self.semver is not None:
            return "semver"
        return "numerical" if self.numerical is not None else "alphabetical"


class ImagePolicySpec(StrictModel):
    """One `imagePolicies[]` entry: which tag of `image` is the one to run now."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    image: str = Field(
        min_length=1,
        max_length=255,
        description="The repository, without tag or digest: registry.example:5000/team/web. "
        "Its host must be served by an entry of `registries`.",
    )
    policy: PolicyKind
    filter_tags: TagFilter | None = Field(default=None, alias="filterTags")
    exclusion_list: list[Pattern] = Field(
        default_factory=lambda: list(DEFAULT_EXCLUSIONS),
        alias="exclusionList",
        max_length=100,
        description="Tags any of these regexes match are never picked; default "
        "['^.*\\\\.sig$'] (signatures); [] excludes nothing.",
    )
    digest: bool = Field(
        default=False,
        description="Also resolve the chosen tag's manifest digest (for `:digest` markers "
        "and `name:tag@digest` references).",
    )
    promotion: Literal["all", "waves"] = Field(
        default="all",
        description="all: every marker gets the new tag in one commit; waves: one commit "
        "per wave of each bundle, the next once the previous wave's gates passed (markers "
        'name their wave with `"$wave"`; README, "Promoting a new tag wave by wave").',
    )

    @field_validator("image")
    @classmethod
    def _repository(cls, value: str) -> str:
        if "@" in value or ":" in value.rpartition("/")[2] or not _IMAGE.match(value):
            raise ValueError(
                f"image {value!r} must be a repository without tag or digest, like "
                "registry.example:5000/team/web"
            )
        return value

    @field_validator("exclusion_list")
    @classmethod
    def _exclusions(cls, value: list[str]) -> list[str]:
        for pattern in value:
            compile_pattern(pattern, "exclusionList entry")
        return value

    @property
    def host(self) -> str:
        return image_host(self.image)


def _branch(value: object) -> object:
    if isinstance(value, str) and not _BRANCH.match(value):
        raise ValueError(f"{value!r} is not a branch name fleet pushes to")
    return value


Branch = Annotated[str, BeforeValidator(_branch), Field(description="a Git branch name")]


class CommitAuthor(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^\s<>@]+@[^\s<>@]+$")


class ImageUpdatesSpec(StrictModel):
    """`imageUpdates`: how often policies are scanned and how changed markers are
    committed back (`fleet.images.writeback` does the Git part)."""

    interval: Duration = Field(
        default=DEFAULT_UPDATE_INTERVAL, description="How often `fleet serve` scans (5m)."
    )
    branch: Branch | None = Field(
        default=None, description="The branch to update; default the branch the fleet follows."
    )
    push_branch: Branch | None = Field(
        default=None,
        alias="pushBranch",
        description="Push there instead (for a pull request); default `branch`.",
    )
    author: CommitAuthor
    message_template: str | None = Field(
        default=None,
        alias="messageTemplate",
        min_length=1,
        max_length=10_000,
        description="The commit message (placeholders: see README, image automation).",
    )
    paths: list[str] = Field(
        default_factory=lambda: ["."],
        min_length=1,
        max_length=100,
        description="Repository-relative directories searched for markers.",
    )

    @field_validator("paths")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        for path in value:
            parts = path.replace("\\", "/").split("/")
            if not path or path.startswith("/") or ".." in parts or "\0" in path:
                raise ValueError(
                    f"imageUpdates.paths entry {path!r} must be a directory inside the "
                    "repository (relative, no '..')"
                )
        return value
