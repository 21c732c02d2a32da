"""Small container images written by Python as an OCI image layout (for skopeo to push).

An OCI image layout (image-spec `image-layout.md`) is a directory with `oci-layout`,
`index.json` and `blobs/sha256/<hex>`. Each image here is one gzip layer holding one text
file and a config naming its platform; `multi_arch` adds an image index over two platforms.
`skopeo copy oci:DIR:TAG docker://...` pushes them (`--all` for an index, `--format v2s2`
for a Docker v2 schema 2 manifest).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def json(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


class OciLayout:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.index: list[dict[str, Any]] = []

    def blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return Descriptor(media_type, f"sha256:{digest}", len(data))

    def image(self, text: str, *, os: str = "linux", arch: str = "amd64") -> Descriptor:
        """One single-platform image whose layer holds `/hello.txt` = `text`."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            data = text.encode()
            info = tarfile.TarInfo("hello.txt")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
        layer_tar = raw.getvalue()
        layer = self.blob(gzip.compress(layer_tar, mtime=0), OCI_LAYER)
        config = {
            "architecture": arch,
            "os": os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [_sha(layer_tar)]},
        }
        config_blob = self.blob(_canonical(config), OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_blob.json(),
            "layers": [layer.json()],
        }
        return self.blob(_canonical(manifest), OCI_MANIFEST)

    def multi_arch(self, text: str) -> Descriptor:
        """An image index over linux/amd64 and linux/arm64/v8."""
        amd = self.image(f"{text} amd64", arch="amd64")
        arm = self.image(f"{text} arm64", arch="arm64")
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                amd.json(platform={"os": "linux", "architecture": "amd64"}),
                arm.json(platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
            ],
        }
        return self.blob(_canonical(index), OCI_INDEX)

    def tag(self, descriptor: Descriptor, name: str) -> None:
        self.index.append(descriptor.json(annotations={REF_NAME: name}))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.index}
        (self.root / "index.json").write_bytes(_canonical(index))


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
