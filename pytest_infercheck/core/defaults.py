"""The one home of the defaults more than one module reads: the option table (options.py) and the
timing, budget and gate code that also run without a pytest session (the CLI, the benchmarks).

Why these values: docs/latency.md (sampling) and docs/gate.md (allowances).
"""

WARMUP = 10  # iterations run and discarded before timing
# On CUDA, warm-up runs the engine for at least this many seconds, then until stable: after idle, and after
# the GPU probe's matrix products, its timings settle over hundreds of milliseconds (measure/timing.CudaEventTimer).
CUDA_SETTLE_S = 0.5
MIN_ITERS = 50
MAX_ITERS = 5000
MIN_TIME_S = 0.1  # seconds of measured time before sampling may stop
MAX_TIME_S = 1.0  # seconds of measured time after which sampling stops (with at least 5 samples)
CI_WIDTH = 0.01  # +-1% on p50: a third of the gate's 3% allowance
CONFIDENCE = 0.95  # of budget decisions and of the stopping rule's intervals
MAX_REGRESSION = 0.03  # the gate's latency allowance
KERNEL_TOLERANCE = 0.05  # the gate's allowance on a launch-bound GPU engine's kernel time (docs/gate.md)
