"""`fleet plan`: what a change of the repository does on every cluster, from two commits alone.

Nothing here talks to a cluster or reads a credential: both commits are loaded, targeted
and rendered (`fleet.desired.DesiredState`, sharing one render cache, so a unit whose
deployment id did not change costs nothing), and the rendered manifests are compared.

- `model`: the plan as data (`FleetPlan`, `ChangeGroup`, `ObjectChange`, ...);
- `objects`: one unit's manifests compared object by object, fleet's bookkeeping left out
  and Secret values redacted;
- `selectors`: the kubectl-style `--selector` string;
- `compute`: base + head -> `FleetPlan` (grouping, placement, waves);
- `describe`: phrases the formats share; `as_text`, `as_markdown`, `as_json`: the three
  output formats.
"""
