# `make binary` builds ./containers-storage: one executable zipapp holding cs_core, the
# installed driver packages and the pure-Python dependencies, like the Go project's
# `make binary`. Compiled dependencies (zstandard, isal) are used when the target system
# has them installed and skipped otherwise (zstd/isal then fall back to the stdlib paths).
PYTHON ?= python3

.PHONY: binary test demo clean

binary:
	$(PYTHON) scripts/build_binary.py containers-storage

test:
	./scripts/test

demo:
	./scripts/demo

clean:
	rm -rf build containers-storage
