"""Pieces of the helm renderer that need no helm binary."""

from __future__ import annotations

from plugins.render_helm import _helm_message, deep_merge, release_name


def test_release_name_is_dns_safe_and_at_most_53_characters() -> None:
    assert release_name("web") == "web"
    assert release_name("My_App.v2") == "my-app-v2"
    long = "a-very-long-bundle-name-" * 4
    name = release_name(long)
    assert len(name) <= 53 and name.startswith("a-very-long-bundle-name-a-very")
    assert release_name(long) == name != release_name(long + "x")


def test_helm_message_is_one_line() -> None:
    stderr = "WARNING: something\nError: template: demo/templates/x.yaml:3:10: boom\n  more\n"
    assert _helm_message(stderr) == "template: demo/templates/x.yaml:3:10: boom"
    assert _helm_message("just this\n") == "just this"


def test_deep_merge_maps_merge_lists_replace() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3], "e": 2}}) == {"a": {"b": 1, "c": [3], "e": 2}, "d": 1}
