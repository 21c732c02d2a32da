"""Runtime: the two ways fleet runs the same engine, and what connects them.

In: a Git source and the settings. Out: clusters converged to the commit, and the status.
The runtimes only orchestrate; what a deploy does lives in `fleet.engine`.

Embedded (`fleet sync`, `fleet diff`, `fleet status`), one process, no Redis:
- `embedded`: one full pass: plan, sync units, remove bundles, report
- `live_status`: what the clusters run vs. what Git wants, read-only
- `clusters`, `credentials`: reaching clusters with credentials from the environment
- `waits`: the operator's cap on a bundle's health wait (both runtimes)

Distributed (`fleet serve` + `fleet worker`, Celery over Redis):
- `scheduler`: one level-triggered tick: poll, load, plan against the state cache, dispatch
- `tasks`: the message contract (task names, queues) and the `Dispatcher` that sends
- `worker`: the work behind each task, one (bundle, cluster) from names to a result
- `state_cache`, `locks`: the scheduler's view of "actual" in Redis; one lock per unit
- `serve`, `http`, `serve_view`: the scheduler loop, webhooks, `/metrics` and `/status`
"""
