# Deep Generative Models, an executable course.
#
#   make book   install what is needed, build the book with every chapter executed
#   make test   install what is needed, run the whole test suite
#
# Both install uv if it is missing (from PyPI, into the user's environment), then the locked
# environment (pyproject.toml + uv.lock) into .venv.

SHELL := /bin/bash
PYTHON ?= python3
UV ?= $(shell command -v uv 2>/dev/null)
ifeq ($(strip $(UV)),)
UV := $(PYTHON) -m uv
endif
# Use the Python that runs make; never let uv fetch an interpreter from the network.
export UV_PYTHON_DOWNLOADS := never
ASSIGNMENTS := $(notdir $(wildcard solutions/*))

.PHONY: book test install uv browser release samples benchmarks clean

uv:
	@$(UV) --version >/dev/null 2>&1 || { \
	  echo "uv not found: installing it from PyPI into the user environment"; \
	  $(PYTHON) -m pip install --user --quiet uv \
	  || $(PYTHON) -m pip install --user --quiet --break-system-packages uv; }

install: uv
	$(UV) sync --locked --python $(PYTHON)

# The browser test drives Debian's chromium (no browser download). Install it where apt-get
# is available to us; elsewhere the browser test reports itself as skipped with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "could not install chromium: the browser test will be skipped"; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    (sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "could not install chromium: the browser test will be skipped"; \
	  else echo "no chromium and no apt-get as root: the browser test will be skipped"; fi; }

book: install
	$(UV) run jb build . -W -n --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

# The suite runs on both cores: two pytest workers, each process (and every notebook kernel
# it starts) limited to one torch/OpenMP thread, so the workers do not oversubscribe the CPU.
TEST_WORKERS ?= 2
test: install browser
	OMP_NUM_THREADS=1 $(UV) run pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

# Refresh the README's sample figures (one per chapter) from a fresh build of the book.
samples: book
	mkdir -p book/samples && cp _build/html/_samples/*.png book/samples/

# Regenerate the student notebooks in notebooks/ from the instructor versions in solutions/.
release: install
	@set -e; for a in $(ASSIGNMENTS); do \
	  $(UV) run nbgrader generate_assignment $$a --force; done; rm -f gradebook.db

benchmarks: install
	$(UV) run python benchmarks/chapter_times.py
	$(UV) run python benchmarks/autograde_times.py

clean:
	rm -rf _build .pytest_cache
