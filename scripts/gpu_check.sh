#!/usr/bin/env bash
# The GPU proof in one call on the lent machine (the `run` device tool), from the repo root:
#   scripts/gpu_check.sh [smoke|tests|bench|all] [benchmarks/gpu.py arguments...]
# smoke: environment facts; tests: `pytest -m gpu`; bench: benchmarks/gpu.py (+ gate_power.py if present);
# probe: scripts/aoti_probe.py (which AOTInductor sequence crashes), then bench.
# Logs go under $OUT (or ./.gpu-out); a short table is printed last.  Polygraphy travels as a wheel in .whl/.
set -u -o pipefail
stage="${1:-all}"
shift || true
OUT="${OUT:-$PWD/.gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

install() {
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      || { echo "wheel install failed"; return 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  # The plugin's entry point must be registered: pytester's in-process runs load plugins that way.
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$OUT/install.log" 2>&1 \
    || { echo "editable install failed:"; tail -5 "$OUT/install.log"; return 1; }
}

smoke() {
  {
    date -u
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw --format=csv
    python3 - <<'EOF'
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0),
      "cc", torch.cuda.get_device_capability(0))
for name in ("triton", "torchvision", "transformers", "onnxruntime", "polygraphy", "tensorrt", "pynvml"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as exc:
        print(name, "MISSING", type(exc).__name__)
import onnxruntime
print("onnxruntime providers", onnxruntime.get_available_providers())
from pytest_infercheck.environment import gpu_info
print("gpu_info", gpu_info())
EOF
  } 2>&1 | tee "$OUT/smoke.log"
}

tests() {
  timeout "${TESTS_TIMEOUT:-420}" python3 -X faulthandler -m pytest -m gpu tests/test_gpu_cudagraphs.py tests/test_gpu_engines.py \
    -p no:randomly -p no:cacheprovider -v -s -rfEs --durations=12 ${PYTEST_TIMEOUT:+--timeout=$PYTEST_TIMEOUT} 2>&1 | tee "$OUT/gpu-tests.log"
  echo "pytest -m gpu exit status: $?" | tee -a "$OUT/gpu-tests.log"
}

bench() {
  timeout "${BENCH_TIMEOUT:-500}" python3 benchmarks/gpu.py --out "$OUT/bench" "$@" >"$OUT/bench.log" 2>&1
  echo "benchmarks/gpu.py exit status: $?"
  if [ -f benchmarks/gate_power.py ]; then
    timeout "${GATE_TIMEOUT:-240}" python3 benchmarks/gate_power.py --device cuda 2>&1 | tee "$OUT/gate-power.log" | tail -25
    echo "benchmarks/gate_power.py exit status: $?"
  fi
}

install || exit 1
case "$stage" in
  smoke) smoke ;;
  probe) smoke >/dev/null; timeout "${PROBE_TIMEOUT:-300}" python3 scripts/aoti_probe.py 2>&1 | tee "$OUT/aoti-probe.log"; bench "$@" ;;
  tests) smoke >/dev/null; tests ;;
  bench) smoke >/dev/null; bench "$@" ;;
  all) smoke; tests; bench "$@" ;;
  *) echo "usage: $0 [smoke|tests|bench|probe|all] [benchmarks/gpu.py args]"; exit 2 ;;
esac
# At most 8 files come back from $OUT: pack the benchmark's own files into one.
if [ -d "$OUT/bench" ]; then tar -czf "$OUT/bench.tar.gz" -C "$OUT" bench && rm -rf "$OUT/bench"; fi
echo "== summary =="
grep -E "passed|failed|error" "$OUT/gpu-tests.log" 2>/dev/null | tail -3
[ -f "$OUT/bench.log" ] && grep -E "^\| |whole matrix" "$OUT/bench.log" | tail -40
exit 0
