#!/usr/bin/env bash
# The kernels' small-shape tests under Oclgrind, the OpenCL device simulator
# that checks every memory access, with --data-races (races in local and
# global memory, work-group barriers) and --check-api (OpenCL API misuse):
# test_ops_forward (convolution, gemm, dense, pooling, activations, softmax)
# with the tiled (GPU) kernels and with the register-blocked (CPU) ones, and
# test_conv_backward (both backward convolutions, tiled, and the
# register-blocked backward-weights) and test_conv_stride1 (the row kernel
# and Winograd F(2x2, 3x3) on its products' and its fused kernels, forward
# and backward-data, and backward-weights), test_conv_groups
# (grouped, dilated and depthwise convolutions on both families) and
# test_batchnorm (both walks, the vector walk's overlapping last vectors, a
# fused relu). Oclgrind interprets every work-item, so
# the tests run a part of their shapes (CLCNN_TEST_QUICK, default 1/100; they
# then report a skip, which counts as a pass here). Fails on any Oclgrind
# diagnostic or failed check. Uses build/ (or $BUILD_DIR), built if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
quick=${OCLGRIND_QUICK:-100}
scripts/deps.sh oclgrind
[ -x "$build/tests/test_ops_forward" ] || BUILD_DIR=$build scripts/build.sh
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
run() {
  local name=$1 conv=$2 test=$3 part=${4:-$quick}
  local log="$build/oclgrind-$name.log" diagnostics="$build/oclgrind-$name.diagnostics"
  rc=0
  (cd "$scratch" && env XDG_CACHE_HOME="$scratch/cache" CLCNN_TMP="$scratch/$name" \
      CLCNN_TEST_QUICK="$part" CLCNN_CONV="$conv" CLCNN_BIN="$PWD/$build/clcnn" \
      nice -n 10 oclgrind --data-races --check-api --log "$OLDPWD/$diagnostics" \
      "$OLDPWD/$build/tests/$test") >"$log" 2>&1 || rc=$?
  local summary
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
  if [ -s "$diagnostics" ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; }; then
    echo "oclgrind $name: FAILED (exit $rc; $summary; see $log and $diagnostics)"
    head -20 "$diagnostics" 2>/dev/null || true
    status=1
  else
    echo "oclgrind $name: no diagnostics; $summary"
  fi
}
run ops_forward_tiled tiled test_ops_forward
run ops_forward_direct direct test_ops_forward
run conv_backward "" test_conv_backward
run conv_stride1 direct test_conv_stride1
# A twentieth, so that some wide depthwise shapes reach the vector reads.
run conv_groups "" test_conv_groups 20
run batchnorm "" test_batchnorm 20
exit $status
