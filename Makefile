# `make demo` and `make test` work on a fresh machine: each builds the virtualenv it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: demo test test-fast test-ffmpeg-system bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# `make test` runs FFmpeg from the imageio-ffmpeg wheel (tests/conftest.py); this runs the FFmpeg
# tests again on the system's `ffmpeg` and `ffprobe` (Debian 12: FFmpeg 5.1, the oldest supported).
FFMPEG_TESTS := tests/pipeline tests/e2e/test_transcode_e2e.py tests/worker/test_ffmpeg_version.py
test-ffmpeg-system: $(STAMP)
	COURSECRAFTER_TEST_FFMPEG=system $(BIN)/python -m pytest -q $(FFMPEG_TESTS)

bench: $(STAMP)
	$(BIN)/python bench/auth_latency.py

clean:
	rm -rf $(VENV) .demo .pytest_cache
