"""A fleet repository for the `fleet plan` tests: Helm, Kustomize and raw YAML bundles on six
clusters in three rollout waves, and one commit per kind of change a pull request makes.

`write_base(tree)` writes the base; each `CHANGES[name](tree)` edits a checkout of the base
into one change. Clusters: dev-1, dev-2 (env=dev, region=eu, wave canary), prod-eu-1,
prod-eu-2 (env=prod, region=eu, wave eu), prod-us-1 (env=prod, region=us) and edge-1
(env=edge, region=us), both in the implicit last wave (rest).
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

CLUSTERS = {
    "dev-1": {"env": "dev", "region": "eu"},
    "dev-2": {"env": "dev", "region": "eu"},
    "prod-eu-1": {"env": "prod", "region": "eu"},
    "prod-eu-2": {"env": "prod", "region": "eu"},
    "prod-us-1": {"env": "prod", "region": "us"},
    "edge-1": {"env": "edge", "region": "us"},
}
PROD = ["prod-eu-1", "prod-eu-2", "prod-us-1"]
DEV = ["dev-1", "dev-2"]
ALL = list(CLUSTERS)
PROD_PASSWORD = "s3cr3t-prod-value"  # must never appear in a plan
NEW_PROD_PASSWORD = "n3w-s3cr3t-prod-value"


def write(root: Path, relpath: str, text: str) -> None:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def definition(config_env: str) -> str:
    clusters = "\n".join(
        f"  - {{name: {name}, labels: {{env: {labels['env']}, region: {labels['region']}}}}}"
        for name, labels in CLUSTERS.items()
    )
    return (
        "apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: plan-test\nclusters:\n"
        f"{clusters}\n"
        "groups:\n"
        "  - {name: prod, selector: {matchLabels: {env: prod}}}\n"
        "  - {name: dev, selector: {matchLabels: {env: dev}}}\n"
        "bundles:\n"
        "  paths:\n"
        "    - glob: bundles/*\n"
        "  inline:\n"
        "    - name: config\n"
        "      path: shared/config\n"
        "      defaultNamespace: platform\n"
        "      targets:\n"
        f"        - clusterSelector: {{matchLabels: {{env: {config_env}}}}}\n"
        "rollout:\n"
        "  waves:\n"
        "    - {name: canary, group: dev}\n"
        "    - {name: eu, selector: {matchLabels: {region: eu}}}\n"
    )


def web_options(prod_replicas: int, prod_password: str) -> str:
    return f"""
        defaultNamespace: web
        helm:
          chart: ./chart
          values:
            replicas: 1
            password: dev-password
        targetCustomizations:
          - name: prod
            clusterGroup: prod
            helm:
              values:
                replicas: {prod_replicas}
                password: {prod_password}
        """


def write_base(root: Path) -> None:
    write(root, "fleet.yaml", definition("dev"))
    write(root, "bundles/web/fleet.yaml", web_options(3, PROD_PASSWORD))
    write(root, "bundles/web/chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n")
    write(root, "bundles/web/chart/values.yaml", "replicas: 1\npassword: none\n")
    write(
        root,
        "bundles/web/chart/templates/deployment.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          labels: {app: web}
        spec:
          replicas: {{ .Values.replicas }}
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers: [{name: web, image: "nginx:1.27"}]
        """,
    )
    write(
        root,
        "bundles/web/chart/templates/secret.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata: {name: web-credentials}
        stringData:
          password: {{ .Values.password | quote }}
          user: web
        """,
    )
    write(root, "bundles/guestbook/fleet.yaml", "defaultNamespace: guestbook\n")
    write(
        root,
        "bundles/guestbook/kustomization.yaml",
        """
        resources: [service.yaml]
        configMapGenerator:
          - name: guestbook-settings
            literals: [color=blue]
        generatorOptions: {disableNameSuffixHash: true}
        """,
    )
    write(
        root,
        "bundles/guestbook/service.yaml",
        """
        apiVersion: v1
        kind: Service
        metadata: {name: guestbook}
        spec:
          ports: [{port: 80}]
          selector: {app: guestbook}
        """,
    )
    write(
        root,
        "shared/config/settings.yaml",
        """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: platform-settings}
        data: {logLevel: info}
        """,
    )


def values_change(root: Path) -> None:
    """The prod group's values: 3 -> 5 replicas and a new password (Helm)."""
    write(root, "bundles/web/fleet.yaml", web_options(5, NEW_PROD_PASSWORD))


def new_bundle(root: Path) -> None:
    """A new Kustomize bundle `cache` on every cluster."""
    write(root, "bundles/cache/fleet.yaml", "defaultNamespace: cache\n")
    write(root, "bundles/cache/kustomization.yaml", "resources: [deployment.yaml]\n")
    write(
        root,
        "bundles/cache/deployment.yaml",
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: redis}
        spec:
          selector: {matchLabels: {app: redis}}
          template:
            metadata: {labels: {app: redis}}
            spec:
              containers: [{name: redis, image: "redis:7"}]
        """,
    )


def removed_bundle(root: Path) -> None:
    """The Kustomize bundle `guestbook` deleted."""
    shutil.rmtree(root / "bundles/guestbook")


def moved_bundle(root: Path) -> None:
    """`config` (raw YAML) retargeted from env=dev to env=prod."""
    write(root, "fleet.yaml", definition("prod"))


def broken_head(root: Path) -> None:
    """Invalid YAML in the raw YAML bundle (line 3) and a Helm template that fails."""
    write(root, "shared/config/settings.yaml", "apiVersion: v1\nkind: ConfigMap\ndata: [oops\n")
    write(
        root,
        "bundles/web/chart/templates/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Values.nope.missing }}}\n",
    )


def broken_definition(root: Path) -> None:
    """A typo in the root fleet.yaml (line 2 of the appended text: `rollouts:`)."""
    text = (root / "fleet.yaml").read_text()
    (root / "fleet.yaml").write_text(text + "rollouts: {}\n")


CHANGES: dict[str, Callable[[Path], None]] = {
    "values": values_change,
    "new-bundle": new_bundle,
    "removed-bundle": removed_bundle,
    "moved-bundle": moved_bundle,
    "broken": broken_head,
    "broken-definition": broken_definition,
}
