"""`fleet images update` promoting a new tag wave by wave, real parts: the test bed's
htpasswd registry (tags pushed with skopeo), git over `git daemon`, the rollout records in
a real Redis (`RedisRolloutStore`, what `fleet serve` writes).

The bundle `web` has a marker per wave (`overlays/canary`, `overlays/prod-eu`, each in a
targetCustomization of its wave) and one without `$wave` in its base manifest (the rest).
Each run commits at most the next wave, and only once the record of the bundle's revision
at the commit committed to says the wave before passed; a failed wave holds."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.desired import load_desired
from fleet.plugin.manager import FleetPlugins
from fleet.rollout import record as rec
from fleet.rollout.record import BundleRollout, WaveRecord, bundle_revisions
from fleet.runtime.rollout_store import RedisRolloutStore
from fleet.runtime.state_cache import connect_redis
from tests.support.oci_images import OciLayout
from tests.support.registry import RegistryServer
from tests.support.servers import GitServer, GitWorkTree, RedisServer, run_git
from tests.support.tls import TlsFiles

FILES = {  # the marker files, by group
    "canary": "web/overlays/canary/deploy_patch.yaml",
    "prod-eu": "web/overlays/prod-eu/deploy_patch.yaml",
    "rest": "web/deploy.yaml",
}


class Bed:
    def __init__(
        self, tree: GitWorkTree, registry: RegistryServer, layout: OciLayout, sfx: str, redis: str
    ) -> None:
        self.tree, self.registry, self.layout, self.sfx, self.redis = (
            tree, registry, layout, sfx, redis)  # fmt: skip
        self.store = RedisRolloutStore(connect_redis(redis), f"promo-{sfx}")

    @property
    def image(self) -> str:
        return f"{self.registry.host}/promo-{self.sfx}/web"

    def push(self, tag: str) -> None:
        self.registry.push_image(self.layout.root, "web", f"promo-{self.sfx}/web:{tag}")

    def update(self, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        code = main(["images", "update", str(self.tree.path), "--redis", self.redis])
        out, err = capsys.readouterr()
        return code, out + err

    def tags(self) -> dict[str, str]:
        """group -> the tag main's head gives its marker."""
        run_git("fetch", "--quiet", "origin", cwd=self.tree.path)
        out = {}
        for group, path in FILES.items():
            text = run_git("show", f"origin/main:{path}", cwd=self.tree.path)
            line = next(x for x in text.splitlines() if "$imagepolicy" in x)
            out[group] = line.split(f"{self.image}:", 1)[1].split()[0]
        return out

    def head(self) -> str:
        run_git("fetch", "--quiet", "origin", cwd=self.tree.path)
        return run_git("rev-parse", "origin/main", cwd=self.tree.path).strip()

    def revision(self) -> str:
        """The revision of `web` at main's head as `fleet sync` and `fleet serve` record it
        (loaded, targeted and rendered: the bundle pins its images' digests)."""
        clone = self.tree.path.parent / f"clone-{uuid.uuid4().hex[:6]}"
        subprocess.run(["git", "clone", "-q", self.tree.remote_url, str(clone)], check=True)
        desired = load_desired(clone, self.head(), FleetPlugins.load())
        return bundle_revisions(desired.units)["web"]

    def record(self, **verdicts: str) -> str:
        """A record of main's revision of `web` with these wave verdicts, saved."""
        revision = self.revision()
        found = BundleRollout("web", revision, self.head())
        for wave, verdict in verdicts.items():
            found.waves[wave.replace("_", "-")] = WaveRecord(
                wave.replace("_", "-"), verdict=verdict
            )
            if verdict == "failed":
                found.outcome, found.failed_wave = rec.FAILED, wave.replace("_", "-")
                found.message = "gate error-rate failed"
        self.store.save([found])
        return revision


def marker(image: str, wave: str | None) -> str:
    extra = f', "$wave": "{wave}"' if wave else ""
    return f'{image}:1.0.0 # {{"$imagepolicy": "web"{extra}}}'


@pytest.fixture
def bed(
    git_server: GitServer,
    htpasswd_registry: RegistryServer,
    registry_tls: TlsFiles,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Bed:
    sfx = uuid.uuid4().hex[:6]
    layout = OciLayout(tmp_path / "layout")
    layout.tag(layout.image(f"web {sfx}"), "web")
    user, password = next(iter(htpasswd_registry.users.items()))
    monkeypatch.setenv("FLEET_REGISTRY_USERNAME_BED", user)
    monkeypatch.setenv("FLEET_REGISTRY_PASSWORD_BED", password)
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path / "cache"))
    registry_tls.trust(monkeypatch)
    tree = git_server.create_repo(f"promo-{sfx}", tmp_path / "repo")
    found = Bed(tree, htpasswd_registry, layout, sfx, redis_server.url)
    image = found.image
    tree.write(
        "fleet.yaml",
        f"apiVersion: fleet-gitops.io/v1alpha1\nkind: Fleet\nname: promo-{sfx}\n"
        "clusters:\n  - {name: canary-1, labels: {tier: canary}}\n"
        "  - {name: eu-1, labels: {region: eu}}\n  - {name: us-1, labels: {region: us}}\n"
        "bundles: {paths: [web]}\n"
        "rollout:\n  waves:\n    - {name: canary, clusters: [canary-1]}\n"
        "    - {name: prod-eu, selector: {matchLabels: {region: eu}}}\n"
        f"registries:\n  - {{name: bed, type: oci, host: '{htpasswd_registry.host}', "
        "credential: bed}\n"
        f"imagePolicies:\n  - name: web\n    image: '{image}'\n"
        "    policy: {semver: {range: '^1'}}\n    promotion: waves\n"
        "imageUpdates:\n  branch: main\n"
        "  author: {name: fleet images bot, email: images@fleet.invalid}\n  paths: [web]\n",
    )
    tree.write(
        "web/fleet.yaml",
        "defaultNamespace: promo\nimages: {pinDigests: true}\ntargetCustomizations:\n"
        "  - {name: canary, clusterName: canary-1, yaml: {overlays: [canary]}}\n"
        "  - {name: prod-eu, clusterSelector: {matchLabels: {region: eu}}, "
        "yaml: {overlays: [prod-eu]}}\n",
    )
    deploy = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n"
        "  template:\n    spec:\n      containers:\n        - name: web\n"
        "          image: {marker}\n"
    )
    tree.write(FILES["rest"], deploy.replace("{marker}", marker(image, None)))
    for wave in ("canary", "prod-eu"):
        tree.write(FILES[wave], deploy.replace("{marker}", marker(image, wave)))
    tree.commit_and_push("web 1.0.0")
    found.push("1.0.0")
    return found


def test_a_new_tag_is_committed_wave_by_wave_once_each_wave_passed(
    bed: Bed, capsys: pytest.CaptureFixture[str]
) -> None:
    bed.push("1.1.0")
    code, out = bed.update(capsys)
    assert code == 0, out
    assert bed.tags() == {"canary": "1.1.0", "prod-eu": "1.0.0", "rest": "1.0.0"}
    assert f"{FILES['canary']}:9 web {bed.image}:1.0.0 -> {bed.image}:1.1.0 (wave canary)" in out
    assert "promotion: web 1.1.0 in bundle web: -> wave canary" in out
    first = bed.head()
    message = run_git("log", "-1", "--format=%B", "origin/main", cwd=bed.tree.path)
    assert "web 1.1.0 -> wave canary (bundle web)" in message

    # no record of this revision yet: nothing moves, and it says what it waits for
    code, out = bed.update(capsys)
    assert code == 0 and bed.head() == first, out
    assert "no marker changes: nothing committed" in out
    assert "waiting before wave prod-eu: revision" in out and "not rolled out yet" in out
    run_git("pull", "--quiet", "origin", "main", cwd=bed.tree.path)
    code = main(["images", "update", str(bed.tree.path), "--redis", bed.redis, "--dry-run"])
    out = "".join(capsys.readouterr())
    assert code == 0 and "0 marker changes (dry run" in out, out
    assert "promotion: web 1.1.0 in bundle web: waiting before wave prod-eu: revision" in out

    # a record of the revision, canary still verifying: waits for it
    bed.record(canary="pending")
    code, out = bed.update(capsys)
    assert bed.head() == first and "wave canary is pending" in out, out

    # (prod-eu "passed" too, in that revision: it ran 1.0.0 then, so it counts for nothing)
    bed.record(canary="passed", prod_eu="passed")
    code, out = bed.update(capsys)
    assert code == 0, out
    assert bed.tags() == {"canary": "1.1.0", "prod-eu": "1.1.0", "rest": "1.0.0"}
    assert "-> wave prod-eu (wave canary passed)" in out
    message = run_git("log", "-1", "--format=%B", "origin/main", cwd=bed.tree.path)
    assert "web 1.1.0 -> wave prod-eu (bundle web)" in message
    assert FILES["canary"] not in message  # one wave per commit

    # canary's pass was for the previous revision: prod-eu's record is needed now
    second = bed.head()
    code, out = bed.update(capsys)
    assert bed.head() == second and "waiting before the markers without $wave" in out, out
    bed.record(canary="passed", prod_eu="passed")
    code, out = bed.update(capsys)
    assert bed.tags() == {"canary": "1.1.0", "prod-eu": "1.1.0", "rest": "1.1.0"}, out
    code, out = bed.update(capsys)
    assert "promotion: web 1.1.0 in bundle web: every wave has it" in out
    assert "no marker changes" in out


def test_a_failed_wave_holds_and_a_newer_tag_starts_again_at_canary(
    bed: Bed, capsys: pytest.CaptureFixture[str]
) -> None:
    bed.push("1.1.0")
    assert bed.update(capsys)[0] == 0
    bed.record(canary="failed")
    held = bed.head()
    code, out = bed.update(capsys)
    assert code == 0 and bed.head() == held, out
    assert "held before wave prod-eu: rollout failed at wave canary" in out
    assert bed.tags() == {"canary": "1.1.0", "prod-eu": "1.0.0", "rest": "1.0.0"}

    bed.push("1.2.0")  # the fix: canary gets it first, whatever canary said of 1.1.0
    code, out = bed.update(capsys)
    assert code == 0, out
    assert bed.tags() == {"canary": "1.2.0", "prod-eu": "1.0.0", "rest": "1.0.0"}


def test_a_wave_the_bundle_does_not_have_is_reported_at_its_line_and_left_alone(
    bed: Bed, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (bed.tree.path / FILES["prod-eu"]).read_text().replace('"prod-eu"', '"staging"')
    bed.tree.write(FILES["prod-eu"], text)
    bed.tree.commit_and_push("a typo")
    bed.push("1.1.0")
    code, out = bed.update(capsys)
    assert code == 0, out
    assert (
        f"warning: {FILES['prod-eu']}:9: the marker names wave 'staging', which bundle web "
        "does not have (its waves: canary, prod-eu, (rest))" in out
    )
    assert bed.tags() == {"canary": "1.1.0", "prod-eu": "1.0.0", "rest": "1.0.0"}
