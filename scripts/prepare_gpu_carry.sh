#!/usr/bin/env bash
# What the GPU machine lacks, made here (on the CPU machine) for scripts/gpu_check.sh to install there:
#
#   scripts/prepare_gpu_carry.sh            download the wheels into .whl/ (torchao, Polygraphy) and
#                                           onnxruntime-gpu's parts into .ort-parts/; say how many calls
#   scripts/prepare_gpu_carry.sh part N     put part N (and SHA256SUMS) alone into .ortN/ (carried in call N)
#
# Each `run` call carries at most 64 MiB (working tree included), so onnxruntime-gpu travels in parts
# of PART_MIB, one per call, carried as `.ort1`, `.ort2`, ...; gpu_check.sh stashes each in /tmp/ortparts
# (which lasts while the machine stays warm: the machine goes back 30 s after a call, so the calls follow
# one another at once, which is why every part has its own folder and nothing is prepared between them)
# and unpacks them once every part named in SHA256SUMS is there.
# .ort/SHA256SUMS: "<sha256> <archive>" on its first line, then "part <file>" per part, in order; the
# archive is an xz tar of the wheel's unpacked site tree, without the C-API library and the TensorRT
# provider (the Python package loads neither without TensorRT).
# .whl/, .ort*/ and .ort-parts/ are gitignored: nothing made here is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-/work/main/.venv/bin/python}"
PY_VERSION="${PY_VERSION:-3.12}"              # the GPU machine's Python (/opt/torch/.venv: 3.12 on 2026-12-07)
TORCHAO_VERSION="${TORCHAO_VERSION:-0.17.0}"  # pyproject's `torchao` extra: built for torch 2.11
ORT_VERSION="${ORT_VERSION:-}"                # empty: the newest onnxruntime-gpu on the index
PART_MIB="${PART_MIB:-50}"
PLATFORM=manylinux_2_28_x86_64

if [ "${1:-}" = part ]; then
  n="${2:?part number}"
  part=$(awk -v n="$n" 'NR == n + 1 {print $2}' .ort-parts/SHA256SUMS)
  [ -n "$part" ] || { echo "no part $n in .ort-parts/SHA256SUMS"; exit 1; }
  rm -rf ".ort$n" && mkdir -p ".ort$n" && cp .ort-parts/SHA256SUMS ".ort-parts/$part" ".ort$n/"
  echo ".ort$n/ holds part $n: $part ($(du -m ".ort$n/$part" | cut -f1) MiB); carry .ort$n (and .whl) in call $n"
  exit 0
fi

download() {  # the wheel for the GPU machine's Python and platform, into $1
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version "$PY_VERSION" --platform "$PLATFORM" \
    -d "$1" "$2" 2>&1 | grep -E "Saved|already|ERROR|No matching" || true
}

mkdir -p .whl
download .whl "torchao==$TORCHAO_VERSION"
download .whl polygraphy
ls -l .whl

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download "$tmp" "onnxruntime-gpu${ORT_VERSION:+==$ORT_VERSION}"
wheel=$(ls "$tmp"/onnxruntime_gpu-*.whl 2>/dev/null | head -1)
[ -n "$wheel" ] || { echo "the index has no onnxruntime-gpu wheel for Python $PY_VERSION on $PLATFORM"; exit 1; }
mkdir -p "$tmp/site"
"$PY" -m zipfile -e "$wheel" "$tmp/site"
cuda=$(sed -n "s/^cuda_version = '\(.*\)'/\1/p" "$tmp/site/onnxruntime/capi/build_and_package_info.py")
echo "$(basename "$wheel"): built for CUDA $cuda (the GPU machine's torch is cu130: CUDA 13)"
case "$cuda" in 13.*) ;; *) echo "warning: onnxruntime-gpu targets CUDA $cuda, not 13: its CUDA provider will not load there";; esac
rm -f "$tmp"/site/onnxruntime/capi/libonnxruntime.so.* "$tmp"/site/onnxruntime/capi/libonnxruntime_providers_tensorrt.so

archive="onnxruntime-gpu-$(basename "$wheel" .whl | cut -d- -f2).tar.xz"
tar -C "$tmp/site" -cf - . | xz -T0 -6 >"$tmp/$archive"
rm -rf .ort-parts && mkdir -p .ort-parts
split -b "${PART_MIB}M" -d -a 2 "$tmp/$archive" ".ort-parts/$archive.part"
{
  echo "$(sha256sum "$tmp/$archive" | cut -d' ' -f1) $archive"
  for part in .ort-parts/"$archive".part*; do echo "part $(basename "$part")"; done
} >.ort-parts/SHA256SUMS
parts=$(($(wc -l <.ort-parts/SHA256SUMS) - 1))
echo "archive $archive: $(du -m "$tmp/$archive" | cut -f1) MiB in $parts part(s) of <= $PART_MIB MiB under .ort-parts/"
echo "onnxruntime-gpu needs $parts call(s), one part each, on the same warm machine:"
for n in $(seq 1 "$parts"); do
  "$0" part "$n"
done
echo "carry [.whl, .ort1] in call 1, [.whl, .ort2] in call 2, ... back to back (scripts/gpu_check.sh stashes each)"
