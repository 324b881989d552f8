# make demo: create .venv, install, run the main MNIST job (offline).
# make test: install if needed and run the test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MNIST := results/mnist

CATSDOGS := results/catsdogs
# The cats-vs-dogs images are never committed: point at a PetImages folder (Cat/*.jpg, Dog/*.jpg).
PETIMAGES ?= $(abspath ../shared/data/PetImages)

.PHONY: install test demo catsdogs bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# pytest exits 5 when it collects no test: say so, and fail (a run that tests nothing is no pass).
test: install
	@$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "error: pytest collected no tests" >&2; fi; exit $$status

# Each step reuses what a previous run finished (same config); see results/README.md.
demo: install
	$(BIN)/uncertadv train cnn --epochs 3 --seed 0 --out $(MNIST)/models/cnn.keras
	$(BIN)/uncertadv score --model $(MNIST)/models/cnn.keras --dataset mnist --samples 50 --seed 1 --out $(MNIST)/test_scores.csv
	$(BIN)/uncertadv train cnn --members 5 --first-member $(MNIST)/models/cnn.keras --epochs 3 --seed 0 --out $(MNIST)/models/ensemble.json
	$(BIN)/uncertadv train vae --epochs 20 --seed 0 --out $(MNIST)/models/vae.json
	$(BIN)/uncertadv report --dataset mnist
	$(BIN)/uncertadv plot all
	$(BIN)/uncertadv plot roc --dataset mnist
	$(BIN)/uncertadv plot adversarial-examples --dataset mnist --attack mim --eps 76
	@echo "Results in $(MNIST)/: table1.md (Table 1), SUMMARY.md (figure numbers), *.png, *.csv, models/*.json (accuracies)."

# Table 1 on cats vs dogs with the trunk that trains here (about 30-45 minutes on 2 cores).
catsdogs: install
	UNCERTADV_PETIMAGES=$(PETIMAGES) $(BIN)/uncertadv train catsdogs --backbone small --seed 0 --out $(CATSDOGS)/models/catsdogs.json
	UNCERTADV_PETIMAGES=$(PETIMAGES) $(BIN)/uncertadv report --dataset catsdogs
	$(BIN)/uncertadv plot roc --dataset catsdogs
	UNCERTADV_PETIMAGES=$(PETIMAGES) $(BIN)/uncertadv plot adversarial-examples --dataset catsdogs --attack mim --eps 10

bench: install
	$(BIN)/python benchmarks/mc_speed.py
	$(BIN)/python benchmarks/latent_map_speed.py
	$(BIN)/python benchmarks/attack_speed.py
	$(BIN)/python benchmarks/table1_speed.py
	$(BIN)/python benchmarks/catsdogs_mc_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
