# Two commands do all the set-up:  `make run` (the main job)  and  `make test`.
# Each creates the virtual environment when it is missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is installed first and by exact version so that no newer build is pulled in;
# override on machines that need another build, e.g. make TORCH="torch torchvision".
TORCH  ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

OUT    ?= out
VIDEO  ?= $(OUT)/sample.mp4
DETS   ?= $(OUT)/sample-det.txt
RUN_ARGS ?= --detector mot --detections $(DETS)

.PHONY: venv run test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	# ultralytics depends on opencv-python, whose cv2 clashes with the headless build we
	# depend on: keep only the headless one.
	$(PY) -m pip uninstall -q -y opencv-python
	$(PY) -m pip install -q --force-reinstall --no-deps opencv-python-headless
	touch $(STAMP)

# The main job on a sample that works offline: a synthetic clip with its detections.
# Your own footage and weights:  make run VIDEO=footage.mp4 RUN_ARGS="--weights yolo11n.pt"
run: $(STAMP)
	@if [ "$(VIDEO)" = "$(OUT)/sample.mp4" ]; then $(VENV)/bin/streamer sample --out $(OUT); fi
	$(VENV)/bin/streamer run $(VIDEO) $(RUN_ARGS) \
		--out-video $(OUT)/annotated.mp4 --events $(OUT)/events.jsonl --mot $(OUT)/tracks.txt

# The tests also run the CPU detector backends (ONNX Runtime, OpenVINO) and a local Ray
# cluster: their extras are installed for the tests only, so `make run` keeps the plain install.
BACKENDS_STAMP := $(VENV)/.backends-installed
$(BACKENDS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,onnx,openvino,int8,cluster]'
	# (the same opencv-python clash as above: reinstalling the package pulls it back in)
	$(PY) -m pip uninstall -q -y opencv-python
	$(PY) -m pip install -q --force-reinstall --no-deps opencv-python-headless
	touch $(BACKENDS_STAMP)

# pytest exits 5 when it collected no test: that fails here too.
test: $(BACKENDS_STAMP)
	$(PY) -m pytest -q

bench: $(BACKENDS_STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/tracker_speed.py
	$(PY) benchmarks/tracker_accuracy.py
	$(PY) benchmarks/pipeline_vs_ultralytics.py
	$(PY) benchmarks/tracker_robustness.py
	$(PY) benchmarks/event_sinks.py
	$(PY) benchmarks/live_streams.py
	$(PY) benchmarks/detector_backends.py
	$(PY) benchmarks/cluster.py

clean:
	rm -rf $(OUT) .pytest_cache
