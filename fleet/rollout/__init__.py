"""Rollout: what may be dispatched now. Pure and level-triggered.

In: the desired units, what each cluster runs (`ActualUnit`s) and the rollout definition
(waves, `maxUnavailable`, `dependsOn`, `paused`). Out: a `Plan`: the units to deploy now,
the bundles to remove, and why the rest wait.

- `planner`: waves, maxUnavailable, dependsOn ordering, removals, gates
"""
