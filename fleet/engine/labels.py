"""Every label, annotation and field manager fleet writes into a cluster, in one place.

They are fleet's contract with the cluster (and with anyone reading it with kubectl):

- on every applied object: labels `fleet-gitops.io/bundle` and `fleet-gitops.io/fleet` (the
  bundle's and the fleet's names as label values), annotations `bundle-name`, `fleet`,
  `deployment-id` and `applied-hash` (see
  `fleet.engine.apply` for why the hash and the id are separate), and `prune: disabled`
  read back from objects a user wants kept;
- on each image pull Secret (`fleet.engine.pull_secrets`): the same, its `applied-hash`
  salted with its own `pull-secret-salt`;
- on each bundle's inventory ConfigMap (`fleet.engine.inventory`): label `inventory`, the
  current `deployment-id`, `commit` and `state` as annotations (one metadata LIST tells what
  a cluster runs), and the owner stamp `fleet` + `keep-resources` + `delete-crd-resources`,
  written by its own field manager so the inventory's server-side applies never remove it;
- on each revision Secret of a bundle's history (`fleet.engine.history`): label `history`,
  the bundle and fleet labels, `revision` (its number) and `revision-status`; annotations
  for the rest of the record (deployment id, commit, when applied, reason, details).
"""

from __future__ import annotations

PREFIX = "fleet-gitops.io"

# applied objects
LABEL_BUNDLE = f"{PREFIX}/bundle"
LABEL_FLEET = f"{PREFIX}/fleet"  # the fleet's name as a label value
ANN_BUNDLE = f"{PREFIX}/bundle-name"
ANN_DEPLOYMENT = f"{PREFIX}/deployment-id"
ANN_HASH = f"{PREFIX}/applied-hash"
ANN_PRUNE = f"{PREFIX}/prune"
ANN_PULL_SALT = f"{PREFIX}/pull-secret-salt"  # pull Secrets: the salt of their applied-hash
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "fleet-gitops"

# inventories
LABEL_INVENTORY = f"{PREFIX}/inventory"
ANN_COMMIT = f"{PREFIX}/commit"
ANN_STATE = f"{PREFIX}/state"
ANN_OBJECTS = f"{PREFIX}/objects"  # how many objects the inventory lists (mass-delete guard)
ANN_FLEET = f"{PREFIX}/fleet"  # the fleet's full name (objects), the owner stamp (inventories)
ANN_KEEP = f"{PREFIX}/keep-resources"  # how its last revision asked to be removed
ANN_DELETE_CRDS = f"{PREFIX}/delete-crd-resources"  # its CRDs may be deleted with it

# revision history (Secrets `<inventory>.r<N>`)
LABEL_HISTORY = f"{PREFIX}/history"
LABEL_REVISION = f"{PREFIX}/revision"  # its number, 1, 2, ...
LABEL_REVISION_STATUS = f"{PREFIX}/revision-status"  # applied, ready, failed, rolledBack
ANN_APPLIED_AT = f"{PREFIX}/applied-at"  # when it was last applied (a rollback re-applies)
ANN_SEQUENCE = f"{PREFIX}/sequence"  # the order revisions were last applied in
ANN_DIGEST = f"{PREFIX}/revision-digest"  # sha256 of the stored manifests and options
ANN_REASON = f"{PREFIX}/revision-reason"  # one line: why failed or rolled back
ANN_DETAILS = f"{PREFIX}/revision-details"  # JSON for the rollout layer (rolledBack)
ANN_NOT_ROLLBACKABLE = f"{PREFIX}/not-rollbackable"  # why its manifests were not kept

# field managers: objects are applied by `fleet/<fleet>/<bundle>` (`fleet.engine.identity`),
# inventories by `fleet`
FIELD_MANAGER = "fleet"
STAMP_MANAGER = "fleet-owner"
