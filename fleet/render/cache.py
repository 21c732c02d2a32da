"""The render cache: rendered manifests by render input hash, in memory and optionally on disk.

Why a cache: a thousand clusters with equal merged options share one render, and a commit
that changes one bundle re-renders only that bundle. The key is computed by
`fleet.render.pipeline` (renderer versions, bundle content, options, kube version); this
module only stores and finds, and hashes bundle directories once per checkout.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import FleetError, TransientError
from fleet.manifest import Manifest
from fleet.spec.hashing import hash_path

log = logging.getLogger(__name__)


@dataclass
class RenderCache:
    """Rendered manifests by render input hash: in-memory LRU, thread-safe, hit/miss counts.

    Entries are stored as JSON text and decoded on every hit, so callers may mutate what they
    get. Concurrent requests for one key render once (the others wait). A `FleetError` is
    remembered too: the same input gives the same error, so a broken chart fails once, not
    once per cluster. A `TransientError` (a chart server down) is not: the next request for
    the key renders again, so an outage does not fail that unit for later commits. Bundle
    content hashes are memoised per directory for the cache's life: use one cache per
    checked-out revision (a Git checkout does not change under it).
    """

    max_entries: int = 512
    directory: Path | None = None  # optional on-disk layer shared by later runs (see below)
    hits: int = 0
    misses: int = 0
    disk_hits: int = 0
    render_seconds: list[float] = field(default_factory=list)  # per render, until taken
    _entries: OrderedDict[str, str | FleetError] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _key_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _content_hashes: dict[tuple[Path, ...], str] = field(default_factory=dict)
    _taken: tuple[int, int] = (0, 0)  # hits, misses at the last take_stats

    def get_or_render(
        self, key: str, produce: Callable[[], list[Manifest]], *, persist: bool = True
    ) -> tuple[list[Manifest], bool]:
        """(manifests, was it a hit?) - `produce` runs only on a miss.

        With a `directory`, a memory miss looks on disk before rendering, and a render is
        written there (`persist=False` for output that depends on more than the key: a
        chart fetched from a repository, whose version range may resolve differently
        tomorrow). Errors are remembered in memory only.
        """
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                cached = self._entries.get(key)
                if cached is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
            if cached is not None:
                if isinstance(cached, FleetError):
                    raise cached
                return json.loads(cached), True
            on_disk = self._read_disk(key) if persist else None
            if on_disk is not None:
                with self._lock:
                    self.hits += 1
                    self.disk_hits += 1
                    self._remember(key, on_disk)
                return json.loads(on_disk), True
            started = time.monotonic()
            try:
                stored: str | FleetError = json.dumps(produce())
            except TransientError:
                with self._lock:
                    self.misses += 1
                    self._key_locks.pop(key, None)
                raise
            except FleetError as err:
                stored = err
            if persist and isinstance(stored, str):
                self._write_disk(key, stored)
            with self._lock:
                self.misses += 1
                self._remember(key, stored)
                if len(self.render_seconds) < 10_000:  # taken by the metrics (take_stats)
                    self.render_seconds.append(time.monotonic() - started)
        if isinstance(stored, FleetError):
            raise stored
        return json.loads(stored), False

    def take_stats(self) -> tuple[list[float], int, int]:
        """(seconds of each render, hits, misses) since the last call, for the metrics."""
        with self._lock:
            taken, self.render_seconds = self.render_seconds, []
            hits, misses = self.hits - self._taken[0], self.misses - self._taken[1]
            self._taken = (self.hits, self.misses)
        return taken, hits, misses

    def _remember(self, key: str, stored: str | FleetError) -> None:
        self._entries[key] = stored
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        self._key_locks.pop(key, None)

    def _disk_path(self, key: str) -> Path | None:
        if self.directory is None:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.directory / digest[:2] / f"{digest}.json.gz"

    def _read_disk(self, key: str) -> str | None:
        path = self._disk_path(key)
        if path is None or not path.is_file():
            return None
        try:
            return gzip.decompress(path.read_bytes()).decode()
        except (OSError, EOFError, UnicodeDecodeError):
            return None  # a torn or foreign file: render again and overwrite it

    def _write_disk(self, key: str, stored: str) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")  # created 0600
            with os.fdopen(fd, "wb") as out:
                out.write(gzip.compress(stored.encode(), compresslevel=3))
            os.replace(tmp, path)
        except OSError as err:
            log.warning("render cache %s not written (%s); rendering again next time", path, err)

    def dir_content_hash(self, dirs: tuple[Path, ...], repo_root: Path) -> str:
        """`dir_content_hash(dirs, repo_root)`, memoised for the life of this cache."""
        with self._lock:
            known = self._content_hashes.get(dirs)
        if known is None:
            known = dir_content_hash(dirs, repo_root)
            with self._lock:
                self._content_hashes[dirs] = known
        return known


def dir_content_hash(dirs: tuple[Path, ...], repo_root: Path) -> str:
    """sha256 over the content of `dirs` (see `fleet.spec.hashing`); symlinks leaving
    `repo_root` are refused, never read."""
    digest = hashlib.sha256()
    for root in dirs:
        digest.update(f"dir:{root}\0{hash_path(root, repo_root)}\0".encode())
    return digest.hexdigest()
