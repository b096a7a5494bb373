#!/usr/bin/env bash
# The GPU proof on the lent machine (the `run` device tool), from the repo root:
#   scripts/gpu_check.sh STAGE [arguments...]
# smoke: environment facts; tests [pytest args]: `pytest -m gpu` (default: the cudagraphs, engines and kernel-time GPU test files);
# bench [benchmarks/gpu.py args]: the GPU benchmark; gate: benchmarks/gate_power.py on the GPU;
# probe [backtrace]: scripts/aoti_probe.py (which AOTInductor sequence crashes, and where);
# ortprobe: scripts/ort_cuda_probe.py (the CUDA provider's FP32 error and CUDA graph timing);
# multigpu [multigpu_compare.py args]: the GPU matrix with -n 1 and -n 2 (2+ GPUs; docs/multi-gpu.md);
# lowprec [benchmarks/gpu_lowprec.py args]: torchao's INT8/FP8 engines, tests/test_gpu_lowprec.py then the
#   benchmark beside the hand recipe; lowprecbench [args]: the benchmark alone (e.g. --models mlp; a long compile:
#   --models convnext --precisions int8 --cache /tmp/lowprec, and the same again in the next call if it ran out);
# aa [benchmarks/gate_aa.py args]: the gate's cross-process A/A on CUDA engines;
# profile [benchmarks/gpu_profile.py args]: do the profile's rows add up (ConvNeXt: eager fp32, inductor fp16 with
#   and without CUDA graph), then tests/test_profiling.py's GPU tests (SmallCNN, eager and inductor fp16, +-CUDA graph);
# gapprobe [scripts/lowprec_gap_probe.py args]: why the plugin's ViT INT8/FP8 engine trails the hand recipe;
# ramp: scripts/clock_ramp_probe.py (how long the GPU takes to settle after idle; the timer's warm-up, before/after);
# repair [benchmarks/repair.py args]: the mixed-precision repair on the GPU's engines (issue 24, item 4);
# warmcold [benchmarks/warm_cold.py args]: cold vs warm p50 of the same engines in separate processes
#   (issue 25, item 1; --unfixed: precompiled loads as before the fix);
# all: smoke, tests, bench, gate.  Stages can be chained in one call: each invocation installs again (seconds).
# Logs go under $OUT (or ./.gpu-out); a short table is printed last.
#
# What the machine lacks travels with the call (the `carry` argument):
#   .whl/  Polygraphy's and torchao's wheels, installed into /tmp/site (scripts/prepare_gpu_carry.sh);
#   .ortN/ (or .ort/) one part of onnxruntime-gpu (the CUDA 13 build, without its C-API library and TensorRT
#          provider), split because the whole is over one call's 64 MiB: each call stashes its part
#          in /tmp/ortparts, which lasts as long as the machine stays warm, and once every part named
#          in .ort/SHA256SUMS is there and checks out, it is unpacked into /tmp/site-ort, ahead of
#          the CPU onnxruntime on the path.
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
  install_onnxruntime_gpu
  # The plugin's entry point must be registered: pytester's in-process runs load plugins that way.
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$OUT/install.log" 2>&1 \
    || { echo "editable install failed:"; tail -5 "$OUT/install.log"; return 1; }
}

install_onnxruntime_gpu() {
  mkdir -p /tmp/ortparts
  for carried in .ort .ort[0-9]*; do  # the part(s) this call carries (scripts/prepare_gpu_carry.sh)
    if [ -f "$carried/SHA256SUMS" ]; then cp "$carried"/* /tmp/ortparts/; fi
  done
  if [ ! -d /tmp/site-ort/onnxruntime ] && [ -f /tmp/ortparts/SHA256SUMS ]; then
    # SHA256SUMS: "<sha256> <archive>" on its first line, then "part <file>" for each part in order.
    local digest archive parts missing=0
    read -r digest archive < /tmp/ortparts/SHA256SUMS
    parts=$(awk 'NR>1 {print "/tmp/ortparts/" $2}' /tmp/ortparts/SHA256SUMS)
    for part in $parts; do
      [ -f "$part" ] || { echo "onnxruntime-gpu: $part not here yet"; missing=1; }
    done
    if [ "$missing" = 0 ]; then
      cat $parts >"/tmp/$archive" && echo "$digest  /tmp/$archive" | sha256sum -c --quiet \
        && mkdir -p /tmp/site-ort && xz -dc "/tmp/$archive" | tar -x -C /tmp/site-ort \
        && echo "onnxruntime-gpu unpacked into /tmp/site-ort" \
        || { echo "onnxruntime-gpu: reassembly failed"; rm -rf /tmp/site-ort; }
    fi
  fi
  if [ -d /tmp/site-ort/onnxruntime ]; then export PYTHONPATH="/tmp/site-ort${PYTHONPATH:+:$PYTHONPATH}"; fi
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
        print(name, getattr(module, "__version__", "?"), getattr(module, "__file__", ""))
    except Exception as exc:
        print(name, "MISSING", type(exc).__name__)
import onnxruntime
print("onnxruntime providers", onnxruntime.get_available_providers())
from pytest_infercheck.backends.environment import gpu_info
print("gpu_info", gpu_info())
EOF
  } 2>&1 | tee -a "$OUT/smoke.log"
}

tests() {
  local files=("$@")
  [ ${#files[@]} -eq 0 ] && files=(tests/test_gpu_cudagraphs.py tests/test_gpu_engines.py tests/test_gpu_kernel_time.py)
  timeout "${TESTS_TIMEOUT:-420}" python3 -X faulthandler -m pytest -m gpu "${files[@]}" \
    -p no:randomly -p no:cacheprovider -v -s -rfEs --durations=12 --log-level=WARNING 2>&1 | tee -a "$OUT/gpu-tests.log"
  echo "pytest -m gpu exit status: $?" | tee -a "$OUT/gpu-tests.log"
}

bench() {
  timeout "${BENCH_TIMEOUT:-500}" python3 benchmarks/gpu.py --out "$OUT/bench" "$@" 2>&1 | tee -a "$OUT/bench.log" | tail -40
  echo "benchmarks/gpu.py exit status: $?"
}

gate() {
  timeout "${GATE_TIMEOUT:-240}" python3 benchmarks/gate_power.py --device cuda "$@" 2>&1 | tee "$OUT/gate-power.log" | tail -25
  echo "benchmarks/gate_power.py exit status: $?"
}

probe() {
  timeout "${PROBE_TIMEOUT:-300}" python3 scripts/aoti_probe.py "$@" 2>&1 | tee -a "$OUT/aoti-probe.log"
}

multigpu() {
  # Needs a machine with 2+ GPUs (docs/multi-gpu.md): the GPU matrix with -n 1 and -n 2, side by side.
  # Runs land in /tmp/multigpu, which lasts while the machine stays warm: a run already there is not
  # repeated, so "multigpu --workers 1" then "multigpu --workers 1,2" fit two 10-minute calls.
  # MULTIGPU_OUT: another directory for another matrix (--source) or setting, kept apart from the first.
  local out="${MULTIGPU_OUT:-/tmp/multigpu}"
  timeout "${MULTIGPU_TIMEOUT:-560}" python3 scripts/multigpu_compare.py --out "$out" "$@" 2>&1 \
    | tee -a "$OUT/multigpu.log" | tail -25
  tar -czf "$OUT/$(basename "$out")-$(date +%H%M%S).tar.gz" --exclude='cache*' --exclude=prime \
    -C "$(dirname "$out")" "$(basename "$out")"
}

aa() {  # the gate's cross-process A/A: benchmarks/gate_aa.py [args] (runs, seed runs), its table into $OUT/aa.log
  local work
  work="$(mktemp -d /tmp/gate-aa-XXXX)"
  timeout "${AA_TIMEOUT:-420}" python3 benchmarks/gate_aa.py --work "$work" "$@" 2>&1 | tee "$OUT/aa.log" | tail -45
  echo "benchmarks/gate_aa.py exit status: $?"
  # The reports and the summary come back too, packed in one file (at most 8 come back from $OUT): a run
  # that moved can be read again after the machine is gone.
  tar -czf "$OUT/aa-$(date +%H%M%S).tar.gz" --exclude=cache -C "$work" .
}

lowprec() {
  lowprec_versions
  tests tests/test_gpu_lowprec.py
  lowprecbench "$@"
}

lowprec_versions() {
  python3 -c "import torch, torchao; print('torch', torch.__version__, 'torchao', torchao.__version__, torchao.__file__, \
'cc', torch.cuda.get_device_capability(0))" 2>&1 | grep -v Warning | tail -3 | tee -a "$OUT/lowprec.log"
}

lowprecbench() {
  [ -f "$OUT/lowprec.log" ] || lowprec_versions
  timeout "${LOWPREC_TIMEOUT:-480}" python3 -X faulthandler benchmarks/gpu_lowprec.py --out "$OUT" "$@" 2>&1 \
    | tee -a "$OUT/lowprec.log" | tail -30
  echo "benchmarks/gpu_lowprec.py exit status: $?"
}

gapprobe() {  # issue 24 item 2: the plugin's torchao engine against the hand recipe, one difference at a time
  timeout "${GAPPROBE_TIMEOUT:-300}" python3 scripts/lowprec_gap_probe.py "$@" 2>&1 | grep -v -i "warn" \
    | tee "$OUT/gapprobe.log" | tail -14
  echo "scripts/lowprec_gap_probe.py exit status: $?"
}

repair() {  # issue 24 item 4: a real numerical failure, the keep-list found and verified, on CUDA's engines
  timeout "${REPAIR_TIMEOUT:-300}" python3 benchmarks/repair.py --device cuda --out "$OUT/repair" "$@" 2>&1 \
    | tee "$OUT/repair.log" | tail -14
  tar -czf "$OUT/repair.tar.gz" -C "$OUT" repair && rm -rf "$OUT/repair"
}

profile() {  # issue 25 item 5: rows against the measured time per iteration, modules named
  timeout "${PROFILE_TIMEOUT:-300}" python3 -X faulthandler benchmarks/gpu_profile.py --json "$OUT/profile.json" "$@" 2>&1 \
    | tee "$OUT/profile.log" | tail -60
  echo "benchmarks/gpu_profile.py exit status: $?"
  timeout 200 python3 -m pytest -m gpu tests/test_profiling.py -p no:randomly -p no:cacheprovider -q -s -rfEs \
    2>&1 | tail -40 | tee -a "$OUT/profile.log"
}

ramp() {  # issue 25: does the timer's warm-up outlast the GPU's clock ramp (the dense graphs' within-run drift)
  timeout "${RAMP_TIMEOUT:-120}" python3 scripts/clock_ramp_probe.py 2>&1 | tee "$OUT/ramp.log" | tail -40
  echo "scripts/clock_ramp_probe.py exit status: $?"
}

ortprobe() {
  timeout "${PROBE_TIMEOUT:-300}" python3 scripts/ort_cuda_probe.py 2>&1 | tee -a "$OUT/ort-probe.log"
}

# The saved-report gate on a real CUDA report: bless it, then gate the same report (exit 0 expected).
gatecli() {
  local dir="$OUT/gatecli"
  mkdir -p "$dir"
  cat >"$dir/test_gatecli.py" <<'PY'
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["eager", "inductor"], precisions=["fp16"], cuda_graphs="both")
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
PY
  {
    PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout "${GATECLI_TIMEOUT:-240}" python3 -m pytest "$dir/test_gatecli.py" \
      -p no:randomly -q --rootdir=. \
      --infer-device=cuda --infer-report="$dir/report.json" 2>&1 | tail -3
    python3 -m pytest_infercheck baseline update "$dir/report.json" --baseline "$dir/baseline.json"; echo "update exit $?"
    python3 -m pytest_infercheck gate "$dir/report.json" --baseline "$dir/baseline.json" --markdown "$dir/gate.md"
    echo "gate exit $?"
  } 2>&1 | tee "$OUT/gatecli.log" | tail -8
}

warmcold() {  # warm equals cold: benchmarks/warm_cold.py [args], its table into $OUT/warmcold.log
  timeout "${WARMCOLD_TIMEOUT:-560}" python3 benchmarks/warm_cold.py --work "$(mktemp -d /tmp/warm-cold-XXXX)" "$@" 2>&1 \
    | tee "$OUT/warmcold.log" | tail -16
  echo "benchmarks/warm_cold.py exit status: $?"
}

# Latency (issue 13) on the GPU: adaptive warm/cold ratio, the gate's power, max batch and memory.
latency() {
  BENCH_TIMEOUT="${BENCH_TIMEOUT:-330}" bench --models resnet50-b1 --sampling adaptive
  timeout "${GATE_TIMEOUT:-150}" python3 benchmarks/gate_power.py --device cuda --sampling adaptive 2>&1 \
    | tee "$OUT/gate-power.log" | tail -14
  timeout "${SEARCH_TIMEOUT:-200}" python3 benchmarks/gpu_search.py --models resnet50,bert 2>&1 \
    | tee "$OUT/gpu-search.log" | tail -16
}

install || exit 1
case "$stage" in
  gatecli) gatecli ;;
  latency) latency ;;
  smoke) smoke ;;
  probe) probe "$@" ;;
  ortprobe) ortprobe ;;
  ramp) ramp ;;
  tests) tests "$@" ;;
  bench) bench "$@" ;;
  gate) gate "$@" ;;
  multigpu) multigpu "$@" ;;
  lowprec) lowprec "$@" ;;
  lowprecbench) lowprecbench "$@" ;;
  aa) aa "$@" ;;
  profile) profile "$@" ;;
  warmcold) warmcold "$@" ;;
  repair) repair "$@" ;;
  gapprobe) gapprobe "$@" ;;
  all) smoke; tests; bench "$@"; gate ;;
  *) echo "usage: $0 [smoke|tests|bench|gate|probe|ortprobe|multigpu|lowprec|lowprecbench|aa|profile|warmcold|repair|gapprobe|ramp|all] [arguments]"; exit 2 ;;
esac
# At most 8 files come back from $OUT: pack the benchmark's own files into one.
if [ -d "$OUT/bench" ]; then tar -czf "$OUT/bench-$(date +%H%M%S).tar.gz" -C "$OUT" bench && rm -rf "$OUT/bench"; fi
echo "== $stage done =="
[ "$stage" = tests ] && grep -E "passed|failed|error" "$OUT/gpu-tests.log" 2>/dev/null | tail -3
exit 0
