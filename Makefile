# bnkit: two entry points.
#   make run   — install missing Debian packages, build in build/, run the main job: a BN
#                hyperparameter study of the source document's model on Fashion-MNIST (GP
#                sampler, median pruning, 2 workers; re-running resumes), then its HTML report
#   make test  — install missing Debian packages, build in build/, run the whole test suite
# Everything else is CMake (see README.md); these are thin conveniences.

BUILD := build
DEPS  := cmake make gcc libc6-dev pkg-config libcmocka-dev libdnnl-dev zlib1g-dev dataset-fashion-mnist libjansson-dev libsqlite3-dev libnlopt-dev liblapacke-dev libopenblas-dev openmpi-bin libopenmpi-dev
JOBS  := $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test _deps _build

RUN_DIR := runs/default

run: _build
	sh scripts/main-job.sh ./$(BUILD)/bnkit $(RUN_DIR) 200

test: _build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

_deps:
	@sh scripts/install-deps.sh $(DEPS)

_build: _deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)
