"""A store client the fault-injection test SIGKILLs at random instants.

Run as ``python -m tests.faults.worker GRAPH RUN DRIVER``. It opens the store, then reads one
JSON operation per line from stdin and performs it, writing ``BEGIN`` just before the store
call and ``ACK`` right after it returns: an operation is acknowledged exactly when ``ACK``
reached the parent. Everything the operation needs (IDs, names, data) comes from the parent,
so after a kill the parent knows what the half-done operation would have produced.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from typing import Any

from cs_core.drivers.staging import TarDiffer
from cs_core.store import ImageOptions, LayerOptions, Store, open_store
from cs_core.store.staged import ApplyStagedLayerOptions


def _data(op: dict[str, Any], key: str = "data") -> bytes:
    return base64.b64decode(op[key])


def perform(store: Store, op: dict[str, Any]) -> None:
    kind = op["op"]
    if kind == "create-layer":
        diff = io.BytesIO(_data(op, "diff")) if op.get("diff") else None
        store.put_layer(id=op["id"], parent=op.get("parent") or None, names=op["names"],
                        options=LayerOptions(), diff=diff)
    elif kind == "applydiff":
        store.apply_diff(op["id"], io.BytesIO(_data(op, "diff")))
    elif kind in ("staged-create", "staged-apply"):
        staged = store.prepare_staged_layer(TarDiffer(io.BytesIO(_data(op, "diff"))))
        try:
            store.apply_staged_layer(ApplyStagedLayerOptions(
                diff_output=staged, id=op["id"], parent_layer=op.get("parent") or "",
                names=list(op.get("names", []))))
        except BaseException:
            store.cleanup_staged_layer(staged)
            raise
    elif kind == "create-image":
        store.create_image(id=op["id"], names=op["names"], layer=op["layer"],
                           options=ImageOptions(big_data={k: base64.b64decode(v)
                                                          for k, v in op["big_data"].items()}))
    elif kind == "create-container":
        store.create_container(id=op["id"], names=op["names"], image=op["image"],
                               layer=op["layer"])
    elif kind == "set-layer-data":
        store.set_layer_big_data(op["id"], op["key"], _data(op))
    elif kind == "set-image-data":
        store.set_image_big_data(op["id"], op["key"], _data(op))
    elif kind == "set-container-data":
        store.set_container_big_data(op["id"], op["key"], _data(op))
    elif kind == "set-names":
        store.set_names(op["id"], op["names"])
    elif kind == "delete-layer":
        store.delete_layer(op["id"])
    elif kind == "delete-image":
        store.delete_image(op["id"])
    elif kind == "delete-container":
        store.delete_container(op["id"])
    elif kind == "delete":
        store.delete(op["id"])
    else:
        raise ValueError(kind)


def main() -> None:
    graph, run, driver = sys.argv[1:4]
    store = open_store(graph_root=graph, run_root=run, driver_name=driver)
    out = sys.stdout
    out.write("READY\n")
    out.flush()
    for line in sys.stdin:
        op = json.loads(line)
        out.write("BEGIN\n")
        out.flush()
        try:
            perform(store, op)
        except Exception as exc:  # reported to the parent, which fails the test
            out.write(f"ERROR {type(exc).__name__}: {exc}\n")
            out.flush()
            continue
        out.write("ACK\n")
        out.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
