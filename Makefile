# Deep Generative Models, an executable course.
#
#   make book   install what is needed, build the book with every chapter executed
#   make test   install what is needed, run the whole test suite
#   make student-kit   build what students get: dist/student-kit/ and dist/student-kit.zip
#   make grade-{release,collect,autograde,feedback,export} COURSE=/path ASSIGNMENT=hwN_...
#               the instructor's grading steps on a course directory outside the repository
#
# Each installs uv if it is missing (from PyPI, into the user's environment), then the locked
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

.PHONY: book test install uv browser sandbox kit-cache release samples benchmarks clean student-kit student-kit-lock \
	grade-check grade-release grade-collect grade-autograde grade-feedback grade-export

uv:
	@$(UV) --version >/dev/null 2>&1 || { \
	  echo "uv not found: installing it from PyPI into the user environment"; \
	  $(PYTHON) -m pip install --user --quiet uv \
	  || $(PYTHON) -m pip install --user --quiet --break-system-packages uv; }

install: uv
	$(UV) sync --locked --python $(PYTHON)

# Two Debian packages the tests use when they can have them: chromium (the browser test)
# and bubblewrap (the grading sandbox). Installed with apt-get where we are root or have
# password-less sudo; elsewhere the browser test skips itself with the reason, and grading
# falls back to resource limits only (its reports say so).
APT_INSTALL = apt_install() { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "no apt-get as root: $$2"; return 0; fi; \
	  echo "installing Debian's $$1"; \
	  ($$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$1 >/dev/null) \
	  || echo "could not install $$1: $$2"; }

browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  $(APT_INSTALL); apt_install chromium "the browser test will be skipped"; }

sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  $(APT_INSTALL); apt_install bubblewrap "grading will run with resource limits only"; }

# The student-kit tests build and lock the kit with uv --offline (nothing downloads during a
# test). `uv sync` fetches the wheels of this platform only; the kit's lock also reads the
# package index pages of every platform it supports, so one online build of the kit, thrown
# away, puts them in uv's cache first (about 10 s).
kit-cache: install
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	  KIT_UV="$(UV)" $(UV) run python student_kit/build.py --out "$$d/student-kit" >/dev/null \
	  || echo "could not build the student kit online: its offline test will say why"

book: install
	$(UV) run jb build . -W -n --keep-going
	@echo "The book is at file://$(CURDIR)/_build/html/index.html"

# The suite runs on both cores: two pytest workers, each process (and every notebook kernel
# it starts) limited to one torch/OpenMP thread, so the workers do not oversubscribe the CPU.
TEST_WORKERS ?= 2
test: install browser sandbox kit-cache
	OMP_NUM_THREADS=1 $(UV) run pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20

# Refresh the README's sample figures (one per chapter) from a fresh build of the book.
samples: book
	mkdir -p book/samples && cp _build/html/_samples/*.png book/samples/

# Regenerate the student notebooks in notebooks/ from the instructor versions in solutions/.
release: install
	@set -e; for a in $(ASSIGNMENTS); do \
	  $(UV) run nbgrader generate_assignment $$a --force; done; rm -f gradebook.db

# The student kit (README, "For students"): the released notebooks, gradelib without its
# checks and grading pipeline as a wheel, and pyproject.toml + uv.lock + README.md from
# student_kit/ (JupyterLab included). student_kit/uv.lock pins the main lock's versions;
# after the main lock changes, `make student-kit-lock` re-derives it (commit the result).
# The tests build and install the kit from uv's cache alone, which `kit-cache` fills.
student-kit: install
	KIT_UV="$(UV)" $(UV) run python student_kit/build.py --out dist/student-kit
student-kit-lock: install
	KIT_UV="$(UV)" $(UV) run python student_kit/build.py --out dist/student-kit --update-lock

benchmarks: install
	$(UV) run python benchmarks/chapter_times.py
	$(UV) run python benchmarks/autograde_times.py

# Instructor grading on a course directory outside the repository (README, "For
# instructors"): make grade-autograde COURSE=/path/to/course ASSIGNMENT=hw1_autoencoders
# Collect with FROM=<folder of student folders> or ZIP=<LMS zip>; GRADE_ARGS passes more
# options to `python -m gradelib.grading` (e.g. --dask-scheduler tcp://host:8786).
GRADE = OMP_NUM_THREADS=1 $(UV) run python -m gradelib.grading
grade-check:
	@test -n "$(COURSE)" || { echo "set COURSE=/path/to/course (outside the repository)"; exit 2; }
grade-release: install grade-check
	$(GRADE) release $(ASSIGNMENT) --course $(COURSE) $(GRADE_ARGS)
grade-collect: install grade-check
	$(GRADE) collect $(ASSIGNMENT) --course $(COURSE) $(if $(ZIP),--zip $(ZIP),--from $(FROM)) $(GRADE_ARGS)
grade-autograde: install sandbox grade-check
	$(GRADE) autograde $(ASSIGNMENT) --course $(COURSE) $(GRADE_ARGS)
grade-feedback: install grade-check
	$(GRADE) feedback $(ASSIGNMENT) --course $(COURSE) $(GRADE_ARGS)
grade-export: install grade-check
	$(GRADE) export --course $(COURSE) $(GRADE_ARGS)

clean:
	rm -rf _build .pytest_cache
