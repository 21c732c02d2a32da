"""Status: the rows and roll-ups `fleet sync`, `fleet status` and `fleet serve` show.

In: per-unit results or observed states. Out: a `FleetStatus` (units rolled up to bundle,
cluster and fleet in Rancher Fleet's states) rendered as a table or JSON.
"""
