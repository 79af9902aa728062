#!/usr/bin/env bash
# Installs what is missing, builds, and runs the tests.
#   scripts/test.sh                    the whole suite (CTest), in build/ or $BUILD_DIR
#   scripts/test.sh --sanitize         the library, the command and the fast tests built
#                                      with AddressSanitizer (leaks included) and
#                                      UndefinedBehaviorSanitizer, in build-sanitize/,
#                                      and run: every test but the four slowest, which
#                                      the whole suite runs without sanitizers, and the
#                                      packaging and Python tests
#   scripts/test.sh --kernels-oclgrind the kernels' small-shape tests under Oclgrind
#                                      (--data-races --check-api), with the tiled (GPU)
#                                      and the direct (CPU) kernels, in build-oclgrind/
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}
scripts/deps.sh
case "$mode" in
all)
  scripts/build.sh
  cd "${BUILD_DIR:-build}"
  ctest --output-on-failure -j"$(nproc)"
  ;;
--sanitize)
  build=build-sanitize
  # Debug keeps assertions; -O1 keeps it fast enough. Every sanitizer report
  # is fatal, so a report fails its test.
  # libpocl.so.2 is linked in (it is otherwise dlopened by the ICD loader)
  # so that it and the libraries under it (LLVM, clang, z3, libstdc++) get
  # their thread-local storage at start-up, in the static block. Blocks that
  # dlopen allocates later go through GCC 12's __tls_get_addr interceptor
  # (LLVM's before 17), which takes a block that malloc places 16 bytes past
  # a page boundary for a pre-2.25 glibc header, reads a bogus range from
  # before it, and LeakSanitizer's tracer then dies scanning it ("Tracer
  # caught signal 11", no leak report) in whichever test it falls on.
  pocl=$(ls /usr/lib/*/libpocl.so.2 2>/dev/null | head -n 1)
  link=${pocl:+"-Wl,--no-as-needed $pocl -Wl,--as-needed"}
  CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1" \
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_EXE_LINKER_FLAGS="$link" -DCMAKE_SHARED_LINKER_FLAGS="$link" >/dev/null
  cmake --build "$build" -j"$(nproc)" >/dev/null
  # max_allocation_size_mb: an allocation over 2 GiB is a report, as it is
  # for libFuzzer (a parser must not allocate what a file only claims).
  # LeakSanitizer suppresses only what other projects' libraries keep to
  # the end of the process (scripts/lsan.supp: fontconfig and libltdl, under
  # `clcnn plot`); PoCL keeps nothing unreachable at exit here, so any other
  # leak report is clcnn's.
  export ASAN_OPTIONS=detect_leaks=1:max_allocation_size_mb=2048:detect_stack_use_after_return=1:strict_string_checks=1
  export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp:print_suppressions=0
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  cd "$build"
  # Not here: the four slowest tests, those that build or load the
  # libraries from outside (package_*: programs of other projects; python:
  # ctypes in an uninstrumented interpreter), which need no sanitizer, and
  # the MPI ones, whose processes end with OpenMPI's own allocations never
  # freed (LeakSanitizer reports them in libmpi and its plugins): clcnn_mpi
  # is not run under the sanitizers, the trainer hooks it uses are
  # (test_trainer_shard).
  ctest --output-on-failure -j"$(nproc)" \
    -E '^(test_conv_backward|test_grad|test_training|test_train_cli|test_mpi_.*|package_.*|python)$'
  ;;
--kernels-oclgrind)
  scripts/oclgrind.sh
  ;;
*)
  echo "usage: scripts/test.sh [--sanitize | --kernels-oclgrind]" >&2
  exit 2
  ;;
esac
