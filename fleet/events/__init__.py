"""Events: every change fleet makes (or refuses), as one record, logged and notified.

In: what the runtimes already have, the engine's results (`UnitResult`, `RemovalResult`,
drift items), a commit loaded or rejected, a cluster that stopped or started answering.
The engine itself knows nothing of events; the runtimes hand its results to
`fleet.events.changes`, which turns them into `Event`s, *only when something changed*
(a unit that fails again the same way is not a new event).

Out:

- `Event` (`fleet.events.model`): type (`unit.failed`, `commit.detected`, ...; the set is
  in `EventType`, with room for the progressive-delivery `wave.*` and `rollout.*`),
  severity, time, fleet, bundle, cluster, commit, deployment id, one line, the objects;
- the log (`fleet.events.sinks`): a bounded Redis stream per fleet (distributed mode), a
  JSON line per event (`fleet sync --events FILE`), and a Kubernetes Event on the bundle's
  inventory ConfigMap in `fleet-system` of the cluster concerned (both modes), all written
  through one `EventPublisher` (`fleet.events.publisher`) that never raises;
- notifications (`fleet.events.alerts`, `fleet.events.routing`, `fleet.events.delivery`):
  state changes only, the same failure on many clusters grouped into one message, routed
  by the definition's `notifiers` and handed to notifier plugins (`fleet_notify`) on a
  background thread, so a notifier that fails or hangs never holds a rollout up.

The package sits below `fleet.plugin` (which re-exports the types notifier plugins get)
and above the engine; it calls plugins only through a callable the runtime passes in.
"""

from fleet.events.model import Delivery, Event, EventType, Notification, NotifierTarget, Severity

__all__ = ["Delivery", "Event", "EventType", "Notification", "NotifierTarget", "Severity"]
