"""Reads multi-document YAML on stdin; prints one line per object (kind, namespace, name)."""

from __future__ import annotations

import sys

import yaml


def main() -> None:
    docs = [doc for doc in yaml.safe_load_all(sys.stdin) if doc]
    for doc in docs:
        meta = doc.get("metadata", {})
        extra = ""
        if doc.get("kind") in ("Deployment", "StatefulSet"):
            extra = f"replicas={doc.get('spec', {}).get('replicas')}"
        namespace = meta.get("namespace", "-")
        print(f"  {doc.get('kind', '?'):<24} {namespace:<16} {meta.get('name', '?'):<28} {extra}")
    print(f"  ({len(docs)} objects)")


if __name__ == "__main__":
    main()
