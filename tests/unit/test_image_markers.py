"""Image policy markers: every form rewritten in place, every other byte kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.images.markers import parse_marker, rewrite_text, rewrite_tree, survey_text
from fleet.images.model import ImageChoice, MarkerChange

OLD_DIGEST = "sha256:" + "a" * 64
NEW_DIGEST = "sha256:" + "b" * 64
WEB = ImageChoice("web", "reg:5000/team/web", "1.2.0", NEW_DIGEST)
API = ImageChoice("api", "reg:5000/team/api", "1.10")  # no digest; plain 1.10 is a float
CHOICES = {"web": WEB, "api": API}


def rewrite(text: str) -> tuple[str, list[MarkerChange], list[str]]:
    return rewrite_text(text, "apps/web.yaml", CHOICES)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (  # raw manifest, full reference
            '      image: reg:5000/team/web:1.0.0 # {"$imagepolicy": "web"}',
            '      image: reg:5000/team/web:1.2.0 # {"$imagepolicy": "web"}',
        ),
        (  # list item, odd spacing kept
            '  - image:   reg:5000/team/web:1.0.0    #   {"$imagepolicy": "web"}  ',
            '  - image:   reg:5000/team/web:1.2.0    #   {"$imagepolicy": "web"}  ',
        ),
        (  # a bare list item
            '  - reg:5000/team/web:1.0.0 # {"$imagepolicy": "web"}',
            '  - reg:5000/team/web:1.2.0 # {"$imagepolicy": "web"}',
        ),
        (  # Helm values: tag only
            'tag: 1.0.0 # {"$imagepolicy": "web:tag"}',
            'tag: 1.2.0 # {"$imagepolicy": "web:tag"}',
        ),
        (  # Helm values: repository only
            '  repository: reg:5000/team/old # {"$imagepolicy": "web:name"}',
            '  repository: reg:5000/team/web # {"$imagepolicy": "web:name"}',
        ),
        (  # kustomization images: entries
            '  newTag: "1.0.0" # {"$imagepolicy": "web:tag"}',
            '  newTag: "1.2.0" # {"$imagepolicy": "web:tag"}',
        ),
        (
            f'  digest: {OLD_DIGEST} # {{"$imagepolicy": "web:digest"}}',
            f'  digest: {NEW_DIGEST} # {{"$imagepolicy": "web:digest"}}',
        ),
        (  # single quotes kept
            '  image: \'reg:5000/team/web:1.0.0\' # {"$imagepolicy": "web"}',
            '  image: \'reg:5000/team/web:1.2.0\' # {"$imagepolicy": "web"}',
        ),
        (  # pinned stays pinned, with the new digest
            f'  image: "reg:5000/team/web:1.0.0@{OLD_DIGEST}" # {{"$imagepolicy": "web"}}',
            f'  image: "reg:5000/team/web:1.2.0@{NEW_DIGEST}" # {{"$imagepolicy": "web"}}',
        ),
        (  # one-line flow mapping: its last scalar
            '  containers: [{name: web, image: reg/web:1.0}] # {"$imagepolicy": "web"}',
            '  containers: [{name: web, image: reg:5000/team/web:1.2.0}] # {"$imagepolicy": "web"}',
        ),
        (  # a tag YAML would read as a number is quoted when it was plain
            'tag: 1.0.0 # {"$imagepolicy": "api:tag"}',
            'tag: "1.10" # {"$imagepolicy": "api:tag"}',
        ),
        (  # JSON-style key
            '  "image": reg/web:1.0 # {"$imagepolicy": "web"}',
            '  "image": reg:5000/team/web:1.2.0 # {"$imagepolicy": "web"}',
        ),
    ],
)
def test_every_marker_form(before: str, after: str) -> None:
    text, changes, warnings = rewrite(f"kind: X\n{before}\nend: 1\n")
    assert text == f"kind: X\n{after}\nend: 1\n"
    assert warnings == []
    assert len(changes) == 1 and changes[0].line == 2 and changes[0].path == "apps/web.yaml"
    assert changes[0].old != changes[0].new


def test_change_records_values_without_quotes() -> None:
    _, changes, _ = rewrite('image: \'reg/web:1\' # {"$imagepolicy": "web"}\n')
    assert changes == [
        MarkerChange("apps/web.yaml", 1, "web", "reg/web:1", "reg:5000/team/web:1.2.0")
    ]


DOCUMENT = """\
# a comment that stays
apiVersion: apps/v1
kind: Deployment   # trailing comment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - name: web
          image: reg:5000/team/web:1.0.0 # {"$imagepolicy": "web"}

          args: ["--image", "reg:5000/team/web:1.0.0"]   # no marker: never touched
        - name: side
          image: reg:5000/team/web:1.0.0
---
# values
image:
    repository: reg:5000/team/web  # {"$imagepolicy": "web:name"}
    tag: 1.0.0  # {"$imagepolicy": "web:tag"}
"""


def test_a_whole_document_changes_on_marker_lines_only() -> None:
    text, changes, warnings = rewrite(DOCUMENT)
    assert warnings == []
    old_lines, new_lines = DOCUMENT.split("\n"), text.split("\n")
    assert len(old_lines) == len(new_lines)
    differing = [i + 1 for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert differing == [10, 19] == [c.line for c in changes]
    assert new_lines[9] == '          image: reg:5000/team/web:1.2.0 # {"$imagepolicy": "web"}'
    assert new_lines[18] == '    tag: 1.2.0  # {"$imagepolicy": "web:tag"}'


def test_already_current_is_no_change_and_the_same_text() -> None:
    text, _, _ = rewrite(DOCUMENT)
    again, changes, warnings = rewrite(text)
    assert again is text and changes == [] and warnings == []
    quoted = 'tag: "1.10" # {"$imagepolicy": "api:tag"}\n'
    assert rewrite(quoted) == (quoted, [], [])


def test_crlf_and_missing_final_newline_are_kept() -> None:
    crlf = 'a: 1\r\nimage: reg/web:1.0 # {"$imagepolicy": "web"}\r\nb: 2'
    text, changes, _ = rewrite(crlf)
    assert text == 'a: 1\r\nimage: reg:5000/team/web:1.2.0 # {"$imagepolicy": "web"}\r\nb: 2'
    assert changes[0].line == 2


@pytest.mark.parametrize(
    ("line", "warning"),
    [
        ('x: y # {"$imagepolicy": "nope"}', "'nope', which is not defined"),
        ('x: y # {"$imagepolicy": web}', "not valid JSON"),
        ('x: y # {"$imagepolicy": "web", "x": 1}', "a marker is exactly"),
        ('x: y # {"$imagepolicy": "web:sha"}', "the form is POLICY"),
        ('x: &a y # {"$imagepolicy": "web"}', "not a `key: value`"),
        ('x: !!str y # {"$imagepolicy": "web"}', "not a `key: value`"),
        ('x: "a\\tb" # {"$imagepolicy": "web"}', "with escapes"),
        ('x: # {"$imagepolicy": "web"}', "not a `key: value`"),
        ('digest: sha256:0 # {"$imagepolicy": "api:digest"}', "has no digest"),
        ('x: \'open # {"$imagepolicy": "web"}', "unterminated quote"),
    ],
)
def test_markers_that_are_not_applied_are_reported(line: str, warning: str) -> None:
    source = f"a: 1\n{line}\n"
    text, changes, warnings = rewrite(source)
    assert text == source and changes == []
    assert len(warnings) == 1 and warnings[0].startswith("apps/web.yaml:2: ")
    assert warning in warnings[0]


def test_pinned_without_a_new_digest_is_written_unpinned_with_a_note() -> None:
    line = f'image: reg/api:1.0@{OLD_DIGEST} # {{"$imagepolicy": "api"}}\n'
    text, changes, warnings = rewrite(line)
    assert text == 'image: reg:5000/team/api:1.10 # {"$imagepolicy": "api"}\n'
    assert len(changes) == 1 and "written unpinned" in warnings[0]


def test_unpinned_stays_unpinned() -> None:
    text, _, _ = rewrite('image: reg/web:1.0 # {"$imagepolicy": "web"}\n')
    assert "@" not in text


@pytest.mark.parametrize(
    "line",
    [
        '# image: reg/web:1.0 # {"$imagepolicy": "web"}',  # commented out
        'note: "see {\\"$imagepolicy\\": x}"',  # in a value, not a comment
        "image: reg/web:1.0 # see $imagepolicy docs",  # a comment, not a marker
    ],
)
def test_lines_that_are_not_markers_are_left_alone(line: str) -> None:
    source = f"{line}\n"
    assert rewrite(source) == (source, [], [])


@pytest.mark.parametrize(
    "choice",
    [
        ImageChoice("web", "reg/web", "1.0 # x"),
        ImageChoice("web", "reg/web", "1.0\nevil: yes"),
        ImageChoice("web", "reg/web'", "1.0"),
        ImageChoice("web", "reg//web", "1.0"),
        ImageChoice("web", "reg/web", "1.0", "sha256:zz"),
    ],
)
def test_choices_that_would_inject_yaml_are_not_written(choice: ImageChoice) -> None:
    source = 'image: reg/web:1.0 # {"$imagepolicy": "web"}\n'
    text, changes, warnings = rewrite_text(source, "f.yaml", {"web": choice})
    assert text == source and changes == [] and "not written" in warnings[0]


def test_parse_marker() -> None:
    assert parse_marker(' {"$imagepolicy": "web"} ') == ("web", None, None)
    assert parse_marker('{"$imagepolicy": "web:digest"}') == ("web", "digest", None)
    with pytest.raises(ValueError):
        parse_marker('{"$imagepolicy": ":tag"}')


def test_parse_marker_wave() -> None:
    found = parse_marker('{"$imagepolicy": "web:tag", "$wave": "canary"}')
    assert (found.policy, found.field, found.wave) == ("web", "tag", "canary")
    for bad in ("1", '""', '["canary"]', "null"):
        with pytest.raises(ValueError, match=r"\$wave must name a wave"):
            parse_marker(f'{{"$imagepolicy": "web", "$wave": {bad}}}')
    with pytest.raises(ValueError, match="a marker is exactly"):
        parse_marker('{"$imagepolicy": "web", "$wave": "canary", "$stage": "x"}')
    with pytest.raises(ValueError, match="a marker is exactly"):
        parse_marker('{"$wave": "canary"}')


WAVED = """\
base: 1.0 # {"$imagepolicy": "web:tag"}
canary: 1.0 # {"$imagepolicy": "web:tag", "$wave": "canary"}
done: 1.2.0 # {"$imagepolicy": "web:tag", "$wave": "prod"}
bad: &a 1.0 # {"$imagepolicy": "web:tag", "$wave": "prod"}
typo: 1.0 # {"$imagepolicy": "web:tag", "$wave": 3}
other: 1.0 # {"$imagepolicy": "api:tag", "$wave": "canary"}
"""


def test_survey_gives_each_marker_its_wave_and_state() -> None:
    sites, warnings = survey_text(WAVED, "v.yaml", {"web": WEB})
    found = [(s.line, s.policy, s.wave, s.state) for s in sites]
    assert found == [
        (1, "web", None, "behind"),
        (2, "web", "canary", "behind"),
        (3, "web", "prod", "current"),
        (4, "web", "prod", "broken"),
    ]
    assert [w.split(": ")[0] for w in warnings] == ["v.yaml:4", "v.yaml:5", "v.yaml:6"]
    assert "$wave must name a wave" in warnings[1]


def test_select_rewrites_only_the_chosen_markers_and_says_nothing_of_the_others() -> None:
    text, changes, warnings = rewrite_text(
        WAVED, "v.yaml", CHOICES, select=lambda path, line, policy: line == 2
    )
    assert [(c.line, c.old, c.new, c.wave) for c in changes] == [(2, "1.0", "1.2.0", "canary")]
    assert text.splitlines()[0] == WAVED.splitlines()[0]
    assert text.splitlines()[1].startswith("canary: 1.2.0 #")
    assert [w.split(": ")[0] for w in warnings] == ["v.yaml:5"]  # unparsed: nobody's marker


# ------------------------------------------------------------------------------ trees


def write(root: Path, relpath: str, text: str | bytes) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


MARKED = 'image: reg/web:1.0 # {"$imagepolicy": "web"}\n'
DONE = 'image: reg:5000/team/web:1.2.0 # {"$imagepolicy": "web"}\n'


def test_rewrite_tree_walks_yaml_under_the_paths_only(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo, "apps/web/deploy.yaml", MARKED)
    write(repo, "apps/web/values.yml", MARKED)
    write(repo, "apps/web/notes.txt", MARKED)
    write(repo, "other/deploy.yaml", MARKED)
    crlf = write(repo, "apps/crlf.yaml", MARKED.replace("\n", "\r\n").encode())
    (repo / "apps/web/deploy.yaml").chmod(0o640)
    changes, warnings = rewrite_tree(repo, ["apps/"], CHOICES)
    assert warnings == []
    assert [c.path for c in changes] == [
        "apps/crlf.yaml",
        "apps/web/deploy.yaml",
        "apps/web/values.yml",
    ]
    assert (repo / "apps/web/deploy.yaml").read_text() == DONE
    assert (repo / "apps/web/deploy.yaml").stat().st_mode & 0o777 == 0o640
    assert crlf.read_bytes() == DONE.replace("\n", "\r\n").encode()
    assert (repo / "apps/web/notes.txt").read_text() == MARKED
    assert (repo / "other/deploy.yaml").read_text() == MARKED
    assert rewrite_tree(repo, ["."], CHOICES)[0] == [
        MarkerChange("other/deploy.yaml", 1, "web", "reg/web:1.0", "reg:5000/team/web:1.2.0")
    ]
    assert rewrite_tree(repo, [""], CHOICES) == ([], [])


def test_rewrite_tree_does_not_follow_symlinks_or_leave_the_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    outside = write(tmp_path, "outside/secret.yaml", MARKED)
    write(repo, "apps/real.yaml", MARKED)
    (repo / "apps/link.yaml").symlink_to(outside)
    (repo / "apps/dirlink").symlink_to(outside.parent)
    (repo / "inside-link").symlink_to(repo / "apps")
    os.mkfifo(repo / "apps/fifo.yaml")
    write(repo, ".git/config.yaml", MARKED)
    changes, warnings = rewrite_tree(repo, ["apps"], CHOICES)
    assert [c.path for c in changes] == ["apps/real.yaml"]
    assert warnings == ["apps/link.yaml: a symlink, markers not read"]
    assert outside.read_text() == MARKED
    for bad in ["../outside", "/etc", "apps/dirlink", "inside-link", ".git"]:
        with pytest.raises(FleetError):
            rewrite_tree(repo, [bad], CHOICES)
    assert outside.read_text() == MARKED
    rewrite_tree(repo, ["."], CHOICES)
    assert (repo / ".git/config.yaml").read_text() == MARKED
    assert outside.read_text() == MARKED


def test_rewrite_tree_reports_big_non_utf8_and_missing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    big = write(repo, "big.yaml", MARKED + "#" * (8 * 1024 * 1024))
    write(repo, "latin.yaml", MARKED.encode() + b"# \xe9\n")
    changes, warnings = rewrite_tree(repo, [".", "nowhere"], CHOICES)
    assert changes == []
    assert "image update path 'nowhere' does not exist" in warnings
    assert any("big.yaml" in w and "8 MiB" in w for w in warnings)
    assert "latin.yaml: not valid UTF-8 text, markers not read" in warnings
    assert big.read_text().startswith(MARKED)
