"""Status: the rows and roll-ups `fleet sync`, `fleet status` and `fleet serve` show.

In: per-unit results or observed states. Out: a `FleetStatus` (units rolled up to bundle,
cluster and fleet in Rancher Fleet's states) rendered as a table or JSON.

- `rows`: one row per unit (and per removal), in the same words whichever mode built it
- `model`: the `FleetStatus` model, its roll-ups and the one table printer
"""
