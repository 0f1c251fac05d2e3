"""Eight processes on one store — half ours (Python API and our CLI), half the Go CLI.

Each worker creates layers and images, names them, writes big data and deletes some of what
it made, recording every acknowledged result. Afterwards the store must hold exactly the
union of the workers' acknowledged states, with no command having failed. The same workers
run one after another on a fresh store to compare wall times (printed). A long-lived reader
must see other processes' writes without reopening anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cs_core.store import open_store
from cs_core.store.check import CheckOptions
from cs_core.testing import gocli

REPO = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("CS_CONCURRENCY_ROUNDS", "4"))

WORKER = r'''
import hashlib, json, os, subprocess, sys, time
mode, graph, run, idx, rounds, datafile = sys.argv[1:7]
idx, rounds = int(idx), int(rounds)
data = open(datafile, "rb").read()
digest = "sha256:" + hashlib.sha256(data).hexdigest()
base = ["-g", graph, "-R", run, "-s", "vfs"]
if mode == "api":
    from cs_core.store import open_store
    store = open_store(graph_root=graph, run_root=run, driver_name="vfs")

def cli(*args):
    exe = [os.environ["CS_GO_CLI"]] if mode == "go" else [sys.executable, "-m", "cs_core"]
    proc = subprocess.run([*exe, *base, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{mode} {args[0]} failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    return proc.stdout

def create_layer(name):
    if mode == "api":
        return store.create_layer(names=[name]).id
    return cli("create-layer", "-n", name).split()[0]

def create_image(name, layer):
    if mode == "api":
        return store.create_image(names=[name], layer=layer).id
    return cli("create-image", "-n", name, layer).split()[0]

def set_data(image):
    if mode == "api":
        store.set_image_big_data(image, "big", data)
    else:
        cli("set-image-data", "-f", datafile, image, "big")

def add_name(layer, name):
    if mode == "api":
        store.add_names(layer, [name])
    else:
        cli("add-names", "-n", name, layer)

def delete_image(image):
    if mode == "api":
        store.delete_image(image)
    else:
        cli("delete-image", image)

layers, images = {}, {}
made = []
for j in range(rounds):
    tag = f"{mode}{idx}-{j}"
    layer = create_layer(f"layer-{tag}")
    layers[layer] = [f"layer-{tag}"]
    image = create_image(f"image-{tag}", layer)
    images[image] = {"names": [f"image-{tag}"], "top": layer, "big": digest}
    set_data(image)
    add_name(layer, f"extra-{tag}")
    layers[layer] = sorted([f"layer-{tag}", f"extra-{tag}"])
    made.append((image, layer))
    if j % 3 == 2:
        old_image, old_layer = made[-2]
        delete_image(old_image)  # takes its layer along: nothing else uses it
        del images[old_image], layers[old_layer]
print(json.dumps({"layers": layers, "images": images}))
'''

MODES = ["api", "api", "cli", "cli", "go", "go", "go", "go"]


def worker_env(go: str) -> dict[str, str]:
    """The workers' environment: this checkout importable, and Go's path for the "go" mode."""
    return dict(os.environ, PYTHONPATH=str(REPO), **{gocli.ENV: go})


def launch(graph: Path, run: Path, datafile: Path, go: str) -> list[subprocess.Popen[str]]:
    env = worker_env(go)
    return [
        subprocess.Popen([sys.executable, "-c", WORKER, mode, str(graph), str(run), str(i),
                          str(ROUNDS), str(datafile)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                         env=env)
        for i, mode in enumerate(MODES)
    ]


def collect(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def observed(graph: Path, run: Path) -> dict[str, Any]:
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    try:
        layers = {x.id: sorted(x.names) for x in store.layers()}
        images = {}
        for image in store.images():
            data = store.image_big_data(image.id, "big")
            images[image.id] = {"names": image.names, "top": image.top_layer,
                                "big": "sha256:" + hashlib.sha256(data).hexdigest()}
        assert store.check(CheckOptions.everything()).empty()
        return {"layers": layers, "images": images}
    finally:
        store.shutdown(True)


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"layers": {}, "images": {}}
    for r in results:
        out["layers"].update(r["layers"])
        out["images"].update(r["images"])
    return out


@pytest.fixture
def go() -> str:
    return gocli.go_cli_path()


def test_eight_processes_ours_and_go(tmp_path: Path, go: str) -> None:
    datafile = tmp_path / "big.bin"
    datafile.write_bytes(os.urandom(1 << 20))
    graph, run = tmp_path / "graph", tmp_path / "run"
    open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    t0 = time.monotonic()
    procs = launch(graph, run, datafile, go)
    results = [collect(p) for p in procs]
    parallel = time.monotonic() - t0
    want = merged(results)
    assert observed(graph, run) == want
    assert len(want["images"]) == len(MODES) * (ROUNDS - ROUNDS // 3)

    # The same work, one worker at a time, on a fresh store.
    graph2, run2 = tmp_path / "graph2", tmp_path / "run2"
    open_store(graph_root=str(graph2), run_root=str(run2), driver_name="vfs")
    t0 = time.monotonic()
    serial_results = []
    env = worker_env(go)
    for i, mode in enumerate(MODES):
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, mode, str(graph2), str(run2), str(i), str(ROUNDS),
             str(datafile)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        serial_results.append(collect(proc))
    serial = time.monotonic() - t0
    assert observed(graph2, run2) == merged(serial_results)
    print(f"\n8 workers x {ROUNDS} rounds: parallel {parallel:.2f}s, serial {serial:.2f}s "
          f"({serial / parallel:.2f}x)")
    # Only a loose bound: on two shared cores the timing is noisy, but a lock convoy or a
    # process stuck waiting on a lock would show up as many times the serial time.
    assert parallel < serial * 2


def test_long_lived_reader_sees_other_processes(tmp_path: Path, go: str) -> None:
    graph, run = tmp_path / "graph", tmp_path / "run"
    reader = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    try:
        assert reader.layers() == []
        go_argv = [go, "-g", str(graph), "-R", str(run), "-s", "vfs"]
        layer = subprocess.run([*go_argv, "create-layer", "-n", "from-go"], check=True,
                               capture_output=True, text=True).stdout.split()[0]
        assert [x.id for x in reader.layers()] == [layer]
        subprocess.run([*go_argv, "create-image", "-n", "img-go", layer], check=True,
                       capture_output=True)
        assert reader.image("img-go").top_layer == layer
        subprocess.run([*go_argv, "add-names", "-n", "again", layer], check=True, capture_output=True)
        assert sorted(reader.layer(layer).names) == ["again", "from-go"]
        subprocess.run([*go_argv, "delete-image", "img-go"], check=True, capture_output=True)
        assert reader.images() == [] and reader.layers() == []
        # And our own other processes, through the CLI.
        ours = [sys.executable, "-m", "cs_core", "-g", str(graph), "-R", str(run), "-s", "vfs"]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        made = subprocess.run([*ours, "create-layer", "-n", "from-us"], check=True,
                              capture_output=True, text=True, env=env).stdout.split()[0]
        assert [x.id for x in reader.layers()] == [made]
    finally:
        reader.shutdown(True)
