"""Fault injection: random store operations in a subprocess, SIGKILLed at random instants.

The parent keeps a model of the acknowledged state. After every kill it opens the store (a
write-access load, which must clean up the half-done item), compares it with the model — the
killed operation may have happened or not, nothing else may differ — and runs ``check``,
which must report nothing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import random
import select
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from cs_core.store import Store, open_store
from cs_core.store.check import CheckOptions

REPO = Path(__file__).resolve().parents[2]


@attrs.define
class LayerState:
    parent: str
    names: list[str]
    digest: str
    big: dict[str, bytes] = attrs.field(factory=dict)
    empty: bool = False  # created without content: applydiff may fill it


@attrs.define
class ImageState:
    top: str
    names: list[str]
    big: dict[str, bytes] = attrs.field(factory=dict)


@attrs.define
class ContainerState:
    image: str
    layer: str
    names: list[str]
    big: dict[str, bytes] = attrs.field(factory=dict)


@attrs.define
class Model:
    layers: dict[str, LayerState] = attrs.field(factory=dict)
    images: dict[str, ImageState] = attrs.field(factory=dict)
    containers: dict[str, ContainerState] = attrs.field(factory=dict)


@attrs.define
class Stats:
    ops: int = 0
    acked: int = 0
    kills: int = 0  # SIGKILLs that landed mid-operation: after BEGIN, before ACK was written
    late_kills: int = 0  # the worker had written ACK by the time the signal arrived
    kills_verified: int = 0  # stores reopened and matched against the model after a kill
    verified: int = 0  # every verification: after kills and the periodic ones
    items_checked: int = 0
    by_kind: dict[str, int] = attrs.field(factory=dict)  # mid-operation kills per operation


class Mismatch(AssertionError):
    pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _hex_id(rng: random.Random) -> str:
    while True:
        value = f"{rng.getrandbits(256):064x}"
        if not value[:12].isdigit():
            return value


class Generator:
    """Seeded random operations that are valid for the current model."""

    def __init__(self, rng: random.Random, model: Model, staging: bool = False) -> None:
        self.rng = rng
        self.model = model
        self.counter = 0
        self.staging = staging  # whether the driver can stage layers (overlay)

    def name(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}-{self.counter}-{self.rng.randrange(1 << 30):x}"

    def tar(self) -> tuple[bytes, str]:
        """A random layer diff; returns (stream as sent, digest of the uncompressed tar)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            top = f"d{self.rng.randrange(1000)}"
            info = tarfile.TarInfo(top)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
            for i in range(self.rng.randint(1, 12)):
                size = self.rng.choice([0, 10, 4096, 70_000, 400_000])
                data = self.rng.randbytes(size)
                info = tarfile.TarInfo(f"{top}/f{i}")
                info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000
                tar.addfile(info, io.BytesIO(data))
        raw = buf.getvalue()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        sent = gzip.compress(raw, 1, mtime=0) if self.rng.random() < 0.3 else raw
        return sent, digest

    def data(self) -> bytes:
        return self.rng.randbytes(self.rng.choice([0, 100, 5000, 300_000, 2_000_000]))

    def _leaf_layers(self) -> list[str]:
        m = self.model
        used = {c.layer for c in m.containers.values()} | {i.top for i in m.images.values()}
        parents = {layer.parent for layer in m.layers.values()}
        return [lid for lid in m.layers if lid not in used and lid not in parents]

    def _image_layers(self) -> list[str]:
        container_layers = {c.layer for c in self.model.containers.values()}
        return [lid for lid in self.model.layers if lid not in container_layers]

    def next(self) -> dict[str, Any]:
        m, rng = self.model, self.rng
        big = len(m.layers) > 20
        choices: list[tuple[str, float]] = [
            ("create-layer", 1.0 if big else 3.0), ("create-image", 2.0),
            ("create-container", 1.5), ("set-layer-data", 1.0), ("set-image-data", 1.5),
            ("set-container-data", 1.5), ("set-names", 1.5), ("applydiff", 2.5),
            ("delete-layer", 3.0 if big else 1.0), ("delete-image", 3.0 if big else 1.0),
            ("delete-container", 3.0 if big else 1.0), ("delete", 2.0 if big else 0.7),
        ]
        if self.staging:
            choices += [("staged-create", 1.0 if big else 2.0), ("staged-apply", 1.5)]
        while True:
            kind = rng.choices([c[0] for c in choices], [c[1] for c in choices])[0]
            op = self._make(kind)
            if op is not None:
                return op

    def _make(self, kind: str) -> dict[str, Any] | None:
        m, rng = self.model, self.rng
        if kind.startswith("staged-"):
            # The same operations with the content staged first (always a diff to stage).
            op = self._make("create-layer" if kind == "staged-create" else "applydiff")
            if op is None:
                return None
            if "diff" not in op:
                diff, digest = self.tar()
                op["diff"], op["digest"] = _b64(diff), digest
            return {**op, "op": kind}
        if kind == "create-layer":
            parents = self._image_layers()
            parent = rng.choice(parents) if parents and rng.random() < 0.6 else ""
            op: dict[str, Any] = {"op": kind, "id": _hex_id(rng), "parent": parent,
                                  "names": [self.name("layer")] if rng.random() < 0.5 else []}
            if rng.random() < 0.8:
                diff, digest = self.tar()
                op["diff"], op["digest"] = _b64(diff), digest
            return op
        if kind == "applydiff":
            empty = [lid for lid in self._leaf_layers() if m.layers[lid].empty]
            if not empty:
                return None
            diff, digest = self.tar()
            return {"op": kind, "id": rng.choice(empty), "diff": _b64(diff), "digest": digest}
        if kind == "create-image":
            layers = self._image_layers()
            if not layers:
                return None
            return {"op": kind, "id": _hex_id(rng), "layer": rng.choice(layers),
                    "names": [self.name("image")],
                    "big_data": {"manifest": _b64(self.data()), "config": _b64(self.data())}}
        if kind == "create-container":
            if not m.images:
                return None
            return {"op": kind, "id": _hex_id(rng), "layer": _hex_id(rng),
                    "image": rng.choice(sorted(m.images)), "names": [self.name("ctr")]}
        if kind.startswith("set-") and kind.endswith("-data"):
            pools_by_kind: dict[str, dict[str, Any]] = {
                "set-layer-data": m.layers, "set-image-data": m.images,
                "set-container-data": m.containers}
            pool = pools_by_kind[kind]
            if not pool:
                return None
            return {"op": kind, "id": rng.choice(sorted(pool)),
                    "key": rng.choice(["config", "manifest", "state", "k=v/x"]),
                    "data": _b64(self.data())}
        if kind == "set-names":
            pools: list[dict[str, Any]] = [p for p in (m.layers, m.images, m.containers) if p]
            if not pools:
                return None
            pool = rng.choice(pools)
            return {"op": kind, "id": rng.choice(sorted(pool)),
                    "names": [self.name("n") for _ in range(rng.randint(0, 2))]}
        if kind == "delete-layer":
            leaves = self._leaf_layers()
            return {"op": kind, "id": rng.choice(leaves)} if leaves else None
        if kind == "delete-image":
            used = {c.image for c in m.containers.values()}
            free = sorted(i for i in m.images if i not in used)
            return {"op": kind, "id": rng.choice(free)} if free else None
        if kind == "delete-container":
            return {"op": kind, "id": rng.choice(sorted(m.containers))} if m.containers else None
        if kind == "delete":  # Store.delete: no safety checks, so pick what is safe to drop
            used = {c.image for c in m.containers.values()}
            targets = [*sorted(m.containers), *sorted(i for i in m.images if i not in used),
                       *self._leaf_layers()]
            return {"op": kind, "id": rng.choice(targets)} if targets else None
        raise ValueError(kind)


# -- applying an operation to the model --------------------------------------------------------


def apply_acked(model: Model, op: dict[str, Any], store_view: Callable[[], Store]) -> None:
    """The model after ``op`` completed."""
    kind, oid = op["op"], op["id"]
    kind = {"staged-create": "create-layer", "staged-apply": "applydiff"}.get(kind, kind)
    if kind == "create-layer":
        model.layers[oid] = LayerState(op["parent"], list(op["names"]), op.get("digest", ""),
                                       empty="diff" not in op)
        _steal_names(model, oid, op["names"], "layer")
    elif kind == "applydiff":
        model.layers[oid].digest, model.layers[oid].empty = op["digest"], False
    elif kind == "create-image":
        model.images[oid] = ImageState(op["layer"], list(op["names"]),
                                       {k: base64.b64decode(v) for k, v in op["big_data"].items()})
    elif kind == "create-container":
        top = model.images[op["image"]].top
        model.layers[op["layer"]] = LayerState(top, [], "")
        model.containers[oid] = ContainerState(op["image"], op["layer"], list(op["names"]))
    elif kind.startswith("set-") and kind.endswith("-data"):
        by_kind: dict[str, dict[str, Any]] = {
            "set-layer-data": model.layers, "set-image-data": model.images,
            "set-container-data": model.containers}
        by_kind[kind][oid].big[op["key"]] = base64.b64decode(op["data"])
    elif kind == "set-names":
        for kind_name, pool in (("layer", model.layers), ("image", model.images),
                                ("container", model.containers)):
            if oid in pool:
                pool[oid].names = list(op["names"])
                _steal_names(model, oid, op["names"], kind_name)
    elif kind == "delete-layer":
        del model.layers[oid]
    elif kind == "delete-image":
        removed = set(_image_removal(model, oid))
        del model.images[oid]
        for lid in removed:
            model.layers.pop(lid, None)
    elif kind == "delete-container" or (kind == "delete" and oid in model.containers):
        layer = model.containers.pop(oid).layer
        model.layers.pop(layer, None)
    elif kind == "delete" and oid in model.images:
        del model.images[oid]  # the record only: Go's Delete keeps the image's layers
    elif kind == "delete":
        del model.layers[oid]


def _steal_names(model: Model, owner: str, names: list[str], kind: str) -> None:
    pools: dict[str, dict[str, Any]] = {"layer": model.layers, "image": model.images,
                                        "container": model.containers}
    pool = pools[kind]
    for oid, state in pool.items():
        if oid != owner:
            state.names = [n for n in state.names if n not in names]


def _image_removal(model: Model, image_id: str) -> list[str]:
    """Layers Go's DeleteImage removes with the image (the chain nobody else needs)."""
    image = model.images[image_id]
    others = {i.top for iid, i in model.images.items() if iid != image_id}
    by_container = {c.layer for c in model.containers.values()}
    children: dict[str, list[str]] = {}
    for lid, layer in model.layers.items():
        children.setdefault(layer.parent, []).append(lid)
    removed: list[str] = []
    current = image.top
    while current:
        if current in by_container or current in others:
            break
        if any(c not in removed for c in children.get(current, [])):
            break
        removed.append(current)
        current = model.layers[current].parent if current in model.layers else ""
    return removed


# -- comparing the store with the model --------------------------------------------------------


def observe(store: Store) -> Model:
    seen = Model()
    for layer in store.layers():
        seen.layers[layer.id] = LayerState(
            layer.parent, list(layer.names), layer.uncompressed_digest,
            {k: store.layer_big_data(layer.id, k) for k in layer.big_data_names})
    for image in store.images():
        seen.images[image.id] = ImageState(
            image.top_layer, list(image.names),
            {k: store.image_big_data(image.id, k) for k in image.big_data_names})
    for c in store.containers():
        seen.containers[c.id] = ContainerState(
            c.image, c.layer, list(c.names),
            {k: store.container_big_data(c.id, k) for k in c.big_data_names})
    return seen


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, LayerState) and isinstance(b, LayerState):
        return (a.parent, a.names, a.digest, a.big) == (b.parent, b.names, b.digest, b.big)
    return bool(a == b)


def reconcile(model: Model, seen: Model, killed: dict[str, Any] | None) -> Model:
    """Check ``seen`` against the model; with a killed op, accept its before or after state.

    Returns the model to continue from (the after state if the op turned out complete).
    """
    candidates = [model]
    if killed is not None:
        after = _copy(model)
        apply_acked(after, killed, lambda: None)  # type: ignore[arg-type, return-value]
        candidates.append(after)
        # Half-done container creates and container/image deletes leave no stranded layer:
        # the next open finishes them (cs_core.store.intents), so only before/after are valid.
    problems: list[str] = []
    for candidate in candidates:
        diff = _differences(candidate, seen)
        if not diff:
            return candidate
        problems.append("; ".join(diff[:5]))
    raise Mismatch(f"store matches neither the state before nor after {killed and killed['op']}: "
                   + " | ".join(problems))


def _brief(state: Any) -> str:
    fields = attrs.asdict(state)
    fields["big"] = {k: (len(v), hashlib.sha256(v).hexdigest()[:8]) for k, v in state.big.items()}
    return str({k: (v[:12] if isinstance(v, str) else v) for k, v in fields.items()})


def _copy(model: Model) -> Model:
    return Model(
        {k: attrs.evolve(v, names=list(v.names), big=dict(v.big)) for k, v in model.layers.items()},
        {k: attrs.evolve(v, names=list(v.names), big=dict(v.big)) for k, v in model.images.items()},
        {k: attrs.evolve(v, names=list(v.names), big=dict(v.big))
         for k, v in model.containers.items()},
    )


def _differences(want: Model, have: Model) -> list[str]:
    out: list[str] = []
    for label, w, h in (("layer", want.layers, have.layers), ("image", want.images, have.images),
                        ("container", want.containers, have.containers)):
        for oid in sorted(set(w) | set(h)):
            if oid not in h:
                out.append(f"{label} {oid[:12]} missing")
            elif oid not in w:
                out.append(f"{label} {oid[:12]} unexpected")
            elif not _same(w[oid], h[oid]):
                out.append(f"{label} {oid[:12]} differs: want {_brief(w[oid])} have {_brief(h[oid])}")
    return out


# -- the driver loop ---------------------------------------------------------------------------


class Worker:
    def __init__(self, graph: Path, run: Path, driver: str) -> None:
        env = dict(os.environ, PYTHONPATH=f"{REPO}:{os.environ.get('PYTHONPATH', '')}")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.worker", str(graph), str(run), driver],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, env=env,
        )
        self._buf = b""
        line = self.readline(60.0)
        if line != "READY":
            raise RuntimeError(f"worker did not start: {line!r}")

    def readline(self, timeout: float) -> str | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return "EOF"
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def send(self, op: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(op).encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> bool:
        """SIGKILL the worker; True if it died mid-operation (it had not written ACK)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        # What it wrote before dying is still in the pipe: an ACK there means the operation
        # had returned before the signal landed, so the kill interrupted nothing.
        rest = self._buf
        while (line := self.readline(5.0)) not in (None, "EOF"):
            rest += line.encode() + b"\n"
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        return b"ACK\n" not in rest

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def verify(graph: Path, run: Path, driver: str, model: Model,
           killed: dict[str, Any] | None, stats: Stats) -> Model:
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name=driver)
    try:
        seen = observe(store)
        model = reconcile(model, seen, killed)
        report = store.check(CheckOptions.everything())
        if not report.empty():
            raise Mismatch(f"check after {killed and killed['op']}: {report.lines()[:6]}")
        staging = graph / driver / "staging"
        if staging.is_dir() and os.listdir(staging):  # the killed worker held none any more
            raise Mismatch(f"stale staging dirs after {killed and killed['op']}: {os.listdir(staging)}")
        stats.verified += 1
        if killed is not None:
            stats.kills_verified += 1
        stats.items_checked += len(seen.layers) + len(seen.images) + len(seen.containers)
        return model
    finally:
        store.close()


def run_campaign(graph: Path, run: Path, driver: str, seed: int, kills: int,
                 max_seconds: float) -> Stats:
    rng = random.Random(seed)
    model = Model()
    gen = Generator(rng, model, staging=driver == "overlay")
    stats = Stats()
    durations: dict[str, float] = {}
    started = time.monotonic()
    worker = Worker(graph, run, driver)
    history: list[str] = []
    try:
        while stats.kills < kills and time.monotonic() - started < max_seconds:
            op = gen.next()
            kind = op["op"]
            stats.ops += 1
            history.append(f"{kind} {op['id'][:12]}")
            worker.send(op)
            if worker.readline(60.0) != "BEGIN":
                raise RuntimeError("worker lost before BEGIN")
            t0 = time.monotonic()
            # Aim the kill anywhere inside the operation (and a little past its usual end).
            expected = durations.get(kind, 0.05)
            delay = rng.uniform(0.0, expected * 1.2) if rng.random() < 0.7 else None
            line = worker.readline(delay if delay is not None else 120.0)
            if line is None:
                if worker.kill():
                    history[-1] += " KILLED"
                    stats.kills += 1
                    stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
                else:
                    history[-1] += " KILLED AFTER ACK"
                    stats.late_kills += 1
                # Either way the op may or may not be in the store: before or after state.
                model = verify(graph, run, driver, model, op, stats)
                gen.model = model
                worker = Worker(graph, run, driver)
                continue
            if line != "ACK":
                raise RuntimeError(f"{kind} failed in the worker: {line}")
            took = time.monotonic() - t0
            durations[kind] = took if kind not in durations else 0.7 * durations[kind] + 0.3 * took
            stats.acked += 1
            apply_acked(model, op, lambda: None)  # type: ignore[arg-type, return-value]
            if stats.acked % 25 == 0:
                model = verify(graph, run, driver, model, None, stats)
                gen.model = model
        worker.close()
    except Mismatch as exc:
        worker.kill()
        raise Mismatch(f"{exc}\nlast operations (seed {seed}): " + "; ".join(history[-40:])) from None
    except BaseException:
        worker.kill()
        raise
    model = verify(graph, run, driver, model, None, stats)
    return stats
