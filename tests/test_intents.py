"""Intent notes (cs_core.store.intents) are held by their process until it ends, and only then
handed to the next store open."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from cs_core.store.intents import LayerIntents

STALE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from cs_core.store.intents import LayerIntents
    print(json.dumps(list(LayerIntents(Path(sys.argv[1])).stale())))
""")


def _stale_seen_by_another_process(directory: Path) -> list[list[str]]:
    proc = subprocess.run([sys.executable, "-c", STALE, str(directory)], capture_output=True,
                          text=True, check=True, timeout=60)
    found: list[list[str]] = json.loads(proc.stdout)
    return found


def test_a_live_intent_is_not_stale_to_other_processes(tmp_path: Path) -> None:
    # Writing the note must not drop the lock that marks it live (POSIX locks go away when
    # any descriptor of the file is closed): otherwise a store opened meanwhile deletes the
    # layers of a container that is being created.
    intent = LayerIntents(tmp_path).begin(["layer-a", "layer-b"])
    try:
        assert _stale_seen_by_another_process(tmp_path) == []
    finally:
        intent.end()
    assert _stale_seen_by_another_process(tmp_path) == []


def test_the_intent_of_a_dead_process_is_handed_over_once(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import os, sys
        from pathlib import Path
        from cs_core.store.intents import LayerIntents
        LayerIntents(Path(sys.argv[1])).begin(["layer-a"])
        os._exit(0)  # dies holding the intent
    """)
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    assert _stale_seen_by_another_process(tmp_path) == [["layer-a"]]
    assert _stale_seen_by_another_process(tmp_path) == []
    assert os.listdir(tmp_path / ".cs-intents") == []
