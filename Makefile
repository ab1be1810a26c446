# `make demo` and `make test` work on a fresh machine: each builds the virtualenv it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

# The web app (src/coursecrafter_server/web): JavaScript dependencies from the npm registry (locked),
# built into web/dist/ (package data, not committed). Rebuilt when its sources change.
WEB      := src/coursecrafter_server/web
WEB_DIST := $(WEB)/dist/index.html
WEB_DEPS := $(WEB)/node_modules/.package-lock.json

.PHONY: demo test test-fast test-ffmpeg-system bench clean web wheel

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

$(WEB_DEPS): $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error

$(WEB_DIST): $(WEB_DEPS) $(WEB)/build.mjs $(wildcard $(WEB)/src/*)
	cd $(WEB) && npm run --silent build

web: $(WEB_DIST)

# A wheel carries the built app.
wheel: $(STAMP) $(WEB_DIST)
	$(BIN)/python -m pip wheel --no-deps --wheel-dir dist .

demo: $(STAMP) $(WEB_DIST)
	$(BIN)/python scripts/demo.py

test: $(STAMP) $(WEB_DIST)
	$(BIN)/python -m pytest -q --durations=25

test-fast: $(STAMP) $(WEB_DIST)
	$(BIN)/python -m pytest -q -m "not slow"

# `make test` runs FFmpeg from the imageio-ffmpeg wheel (tests/conftest.py); this runs the FFmpeg
# tests again on the system's `ffmpeg` and `ffprobe` (Debian 12: FFmpeg 5.1, the oldest supported).
FFMPEG_TESTS := tests/pipeline tests/e2e/test_transcode_e2e.py tests/worker/test_ffmpeg_version.py
test-ffmpeg-system: $(STAMP) $(WEB_DIST)
	COURSECRAFTER_TEST_FFMPEG=system $(BIN)/python -m pytest -q $(FFMPEG_TESTS)

bench: $(STAMP)
	$(BIN)/python bench/auth_latency.py

clean:
	rm -rf $(VENV) .demo .pytest_cache $(WEB)/dist $(WEB)/node_modules
