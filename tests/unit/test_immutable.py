"""Immutable-field errors: which field, and who may recreate (fleet.engine.immutable)."""

from __future__ import annotations

import json

from fleet.engine.immutable import annotation_forces, force_wanted, immutable_fields
from fleet.engine.kube import Invalid, classify
from fleet.spec.bundle_options import BundleOptions


def _status(message: str, causes: list[dict[str, str]]) -> bytes:
    return json.dumps(
        {"kind": "Status", "message": message, "details": {"causes": causes}}
    ).encode()


def test_a_deployment_selector_change_names_the_field() -> None:
    raw = _status(
        'Deployment.apps "web" is invalid: spec.selector: Invalid value: '
        "v1.LabelSelector{...}: field is immutable",
        [
            {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: v1.LabelSelector{...}: field is immutable",
                "field": "spec.selector",
            }
        ],
    )
    err = classify(422, raw, cluster="c1", what="apply Deployment ns/web")
    assert isinstance(err, Invalid)
    assert immutable_fields(err) == ["spec.selector"]


def test_statefulset_and_service_wordings_and_other_invalid_errors() -> None:
    sts = _status("invalid", [{"reason": "FieldValueForbidden", "field": "spec",
        "message": "Forbidden: updates to statefulset spec for fields other than "
                   "'replicas' are forbidden"}])  # fmt: skip
    assert immutable_fields(classify(422, sts, cluster="c", what="w")) == ["spec"]
    svc = _status("invalid", [{"reason": "FieldValueInvalid", "field": "spec.clusterIPs[0]",
        "message": 'Invalid value: []string{"None"}: may not change once set'}])  # fmt: skip
    assert immutable_fields(classify(422, svc, cluster="c", what="w")) == ["spec.clusterIPs[0]"]
    other = _status("invalid", [{"reason": "FieldValueRequired", "field": "spec.template",
        "message": "Required value"}])  # fmt: skip
    assert immutable_fields(classify(422, other, cluster="c", what="w")) == []
    # no causes: the message alone
    bare = classify(422, _status(
        'Job.batch "j" is invalid: spec.template: Invalid value: x: field is immutable', []
    ), cluster="c", what="w")  # fmt: skip
    assert immutable_fields(bare) == ["spec.template"]


def test_who_may_recreate() -> None:
    plain = BundleOptions.model_validate({})
    assert not force_wanted(plain, drift=False) and not force_wanted(plain, drift=True)
    helm = BundleOptions.model_validate({"helm": {"force": True}})
    assert force_wanted(helm, drift=False) and force_wanted(helm, drift=True)
    drift = BundleOptions.model_validate({"correctDrift": {"enabled": True, "force": True}})
    assert not force_wanted(drift, drift=False) and force_wanted(drift, drift=True)
    ours = {"metadata": {"annotations": {"fleet-gitops.io/force": "true"}}}
    argo = {
        "metadata": {"annotations": {"argocd.argoproj.io/sync-options": "Force=true, Replace=true"}}
    }
    half = {"metadata": {"annotations": {"argocd.argoproj.io/sync-options": "Replace=true"}}}
    assert annotation_forces(ours) and annotation_forces(argo)
    assert not annotation_forces(half) and not annotation_forces({"metadata": {}})
