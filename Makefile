# The two commands of the README:  `make course` runs every notebook, `make test` runs every test.
PYTHON ?= python3
# the course's notebooks, as ftcourse.paths.NOTEBOOK_GLOB
NOTEBOOK_GLOB := [0-9][0-9]*_*.ipynb
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch on Linux x86_64 with this tag; override e.g. TORCH_SPEC="torch" on a GPU box.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export MPLBACKEND ?= Agg
# pytest exits 5 when it collects nothing: say so plainly instead of a bare make error
PYTEST_RC = rc=$$?; [ $$rc -ne 5 ] || echo "ERROR: pytest collected no tests"; exit $$rc

.PHONY: install install-export course publish-times test lint format notebooks-test standin-test unit-test model-test \
	browser-test lane-training lane-deep-dive lane-others lane-after-04 lane-checks \
	constraints clean base-model sweep train-speed determinism colab-cells

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, so the package's plain `torch` requirement is already met by the CPU build
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,track]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

# The export extra (gguf, llama-cpp-python) for `python -m ftcourse export --gguf` and its tests.
# llama-cpp-python comes as source: its wheel is built once per version and build options, kept
# outside the clone and reused by every later clone (pip's own cache would keep a wheel built with
# other options). The options: GGML_NATIVE=OFF, a portable build (AVX2; no AMX, whose q8_0 kernels
# crashed a native build on a CPU that lists AMX inside a virtual machine); LLAVA_BUILD=OFF, without
# the multimodal library the course never loads. Building took 5.5 minutes on a 2-core machine.
LLAMA_CPP_VERSION := $(shell sed -n 's/^llama_cpp_python==//p' constraints.txt)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
LLAMA_WHEELS ?= $(HOME)/.cache/ftcourse/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(shell \
	echo '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
install-export: install
	@ls $(LLAMA_WHEELS)/*.whl > /dev/null 2>&1 || { \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) ($(LLAMA_CMAKE_ARGS)) into $(LLAMA_WHEELS)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel -q --no-deps --no-cache-dir \
	    "llama-cpp-python==$(LLAMA_CPP_VERSION)" -w $(LLAMA_WHEELS).partial && \
	  mv $(LLAMA_WHEELS).partial $(LLAMA_WHEELS); }
	$(BIN)/python -m pip install -q --no-deps --force-reinstall $(LLAMA_WHEELS)/*.whl
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[export]"

# Runs every notebook; writes only under build/ (executed copies, HTML, course-times.md)
course: install
	$(BIN)/python scripts/run_course.py

# Copies the last `make course` table into README.md and docs/instructor-guide.md
publish-times: install
	$(BIN)/python scripts/run_course.py --publish

# The GPU profiles' CPU stand-ins (ftcourse/standins.py) run the notebooks whose code reads the
# profile (scripts/profile_notebooks.py decides from the code; the others run alike everywhere)
STANDINS ?= t4-standin gpu-24gb-standin llama-3.1-8b-standin
# Notebook 04 through `FTCOURSE_MODEL` (ftcourse/ownmodel.py) on a stand-in of each model family a
# learner is likely to pick: the profile is derived from the model, as for your own model
MODELS ?= qwen3-1.7b gemma-3-1b-it llama-3.2-1b-instruct lfm2-1.2b
# a cell that runs this long has hung: fail it instead of the whole CI run
NBVAL = $(BIN)/python -m pytest -q --durations=10 --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
	-p no:cacheprovider

# `make test`: install, lint, then three lanes side by side on the machine's two cores, each a chain
# of stages: the notebooks on cpu-tiny that train (02 writes the splits 04 trains on; 04b reuses
# 04's bugfix adapter), the other notebooks (05, 06 and 08 wait for 04's adapters, 08's solutions
# for 08's mixed adapter), and the unit tests, the stand-ins and the browser. A stage's output goes to build/test-logs/; the console shows each
# stage's start and end with its wall time, then a table of them. OMP_WAIT_POLICY=PASSIVE: torch's
# waiting OpenMP threads sleep instead of spinning on a core another lane needs.
# CI installs the export extra too, so the GGUF tests and notebook 07's llama.cpp cells run there.
STAGE = scripts/stage.sh
NOTEBOOKS := $(sort $(wildcard notebooks/$(NOTEBOOK_GLOB))) \
	$(sort $(wildcard notebooks/solutions/$(NOTEBOOK_GLOB)))
NB_TRAINING := notebooks/02_data.ipynb notebooks/04_qlora_training.ipynb
NB_DEEP_DIVE := notebooks/04b_debugging_a_fine_tune.ipynb
NB_AFTER_04 := notebooks/05_inference_and_adapters.ipynb notebooks/06_capstone.ipynb \
	notebooks/08_after_sft.ipynb notebooks/solutions/08_after_sft_solutions.ipynb
NB_OTHERS := $(filter-out $(NB_TRAINING) $(NB_DEEP_DIVE) $(NB_AFTER_04),$(NOTEBOOKS))

test:
	@rm -rf build/test-logs
	@$(STAGE) install $(MAKE) --no-print-directory install
	@$(STAGE) install-export $(MAKE) --no-print-directory install-export
	@$(STAGE) lint $(MAKE) --no-print-directory lint
	@status=0; OMP_WAIT_POLICY=PASSIVE $(MAKE) --no-print-directory -j3 \
	  lane-deep-dive lane-after-04 lane-checks || status=$$?; \
	  $(STAGE) --summary; exit $$status

lane-training:
	@$(STAGE) notebooks-02-04 $(NBVAL) $(NB_TRAINING)
lane-deep-dive: lane-training
	@$(STAGE) notebooks-04b $(NBVAL) $(NB_DEEP_DIVE)
	@$(STAGE) notebook-04-models $(MAKE) --no-print-directory model-test
lane-others:
	@$(STAGE) notebooks-others $(NBVAL) $(NB_OTHERS)
lane-after-04: lane-training lane-others
	@$(STAGE) notebooks-05-06-08 $(NBVAL) $(NB_AFTER_04)
lane-checks:
	@$(STAGE) unit-tests $(MAKE) --no-print-directory unit-test
	@for p in $(STANDINS); do \
	  $(STAGE) notebooks-$$p $(MAKE) --no-print-directory standin-test STANDINS=$$p || exit $$?; \
	done
	@$(STAGE) browser $(MAKE) --no-print-directory browser-test

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit-test: install
	$(BIN)/python -m pytest -q --durations=20 --ignore=tests/browser tests; $(PYTEST_RC)

notebooks-test: install
	$(NBVAL) $(NOTEBOOKS); $(PYTEST_RC)

standin-test: install
	@for p in $(STANDINS); do \
	  echo "== notebooks on the $$p profile"; \
	  FTCOURSE_PROFILE=$$p FTCOURSE_OUTPUT_DIR=$(CURDIR)/outputs/standins/$$p \
	    $(NBVAL) $$($(BIN)/python scripts/profile_notebooks.py) || exit $$?; \
	done

model-test: install
	@for m in $(MODELS); do \
	  echo "== notebook 04 with FTCOURSE_MODEL=build/standins/$$m"; \
	  FTCOURSE_MODEL=build/standins/$$m FTCOURSE_OUTPUT_DIR=$(CURDIR)/outputs/models/$$m \
	    $(NBVAL) notebooks/04_qlora_training.ipynb || exit $$?; \
	done

# The widgets in JupyterLab in headless Chromium (Debian's chromium, installed here when missing)
browser-test: install
	bash scripts/install_browser.sh
	$(BIN)/python -m pytest -q -m browser -p no:cacheprovider tests/browser; $(PYTEST_RC)

# The Colab setup cell and badges, from pyproject.toml's [project.urls] (run after changing it)
colab-cells: install
	$(BIN)/python -m ftcourse.colab

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/nbstripout --keep-id notebooks/*.ipynb notebooks/solutions/*.ipynb

constraints: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -viE '^(torch|nvidia|triton)' \
	  | sed '1i # Exact versions the course is tested with. Regenerate with: make constraints' > constraints.txt

# Re-make data/base-model: three stages, about 70 minutes on 2 CPU cores (see scripts/make_base_model.py)
base-model: install
	$(BIN)/python scripts/make_base_model.py --out build/base-model-stage1
	$(BIN)/python scripts/make_base_model.py --init-from build/base-model-stage1 --steps 1200 \
	  --lr 1e-3 --warmup 50 --repeat-share 0.75 --out build/base-model-stage2
	$(BIN)/python scripts/make_base_model.py --init-from build/base-model-stage2 --steps 600 \
	  --lr 1e-3 --warmup 30 --repeat-share 0.5 --out data/base-model
	$(BIN)/python benchmarks/base_vs_random.py --update-card data/base-model/README.md

# Hyperparameter sweeps and QLoRA vs LoRA vs full, measured (~30 min on 2 cores)
sweep: install
	$(BIN)/python benchmarks/sweep.py --out build/benchmarks/sweep --update-docs docs/benchmarks.md

# The course's trl training against a plain PyTorch loop, steps/s as a ratio (~25 min on 2 cores)
train-speed: install
	$(BIN)/python benchmarks/train_speed.py --steps 60 --repeats 3 --update-docs docs/benchmarks.md

# The core notebooks twice in fresh kernels: their printed metrics must agree (~11 min on 2 cores)
determinism: install
	$(BIN)/python scripts/determinism.py

clean:
	rm -rf build outputs
