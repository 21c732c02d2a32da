"""Targeting: which bundle goes to which cluster, with which options, under which id.

In: a `FleetRepo` (definition + bundles). Out: one `DeploymentUnit` per (bundle, cluster)
with the options merged for that cluster and its deployment id (a content hash). Pure
functions, no I/O.

- `units`: targets, targetCustomizations, doNotDeploy, deployment ids
- `selectors`: Kubernetes label selectors, compiled once
- `templating`: Rancher Fleet's `${ .ClusterLabels.x }` Helm values templating
- `dependencies`: `dependsOn` between the units of one cluster: order and cycles
"""
