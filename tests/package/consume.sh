#!/bin/sh
# Builds and runs tests/package/consumer as a user's project would:
#   consume.sh find_package    BUILD_DIR SCRATCH PACKAGE_DIR CMAKE
#       installs BUILD_DIR into SCRATCH/prefix and uses find_package(clcnn)
#   consume.sh pkg-config      BUILD_DIR SCRATCH PACKAGE_DIR CMAKE
#       installs BUILD_DIR into SCRATCH/prefix and compiles with pkg-config's flags
#   consume.sh add_subdirectory SOURCE_DIR SCRATCH PACKAGE_DIR CMAKE
#       builds clcnn from SOURCE_DIR inside the consumer's project
# Each links the shared and the static library and runs both programs.
set -eu
mode=$1 tree=$2 scratch=$3 package=$4 cmake=$5
rm -rf "$scratch"
mkdir -p "$scratch"
prefix=$scratch/prefix

case $mode in
find_package)
    "$cmake" --install "$tree" --prefix "$prefix" >"$scratch/install.log"
    "$cmake" -S "$package/consumer" -B "$scratch/build" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_BUILD_TYPE=Release >"$scratch/configure.log"
    "$cmake" --build "$scratch/build" >"$scratch/build.log"
    bin=$scratch/build
    ;;
add_subdirectory)
    "$cmake" -S "$package/consumer" -B "$scratch/build" -G "Unix Makefiles" -DCLCNN_SOURCE="$tree" \
        -DCMAKE_BUILD_TYPE=Release >"$scratch/configure.log"
    # Only the consumer's targets and what they need: no CLI, no tests.
    "$cmake" --build "$scratch/build" --target consumer_shared consumer_static -j2 >"$scratch/build.log"
    # The library's targets are there, the command's and the tests' are not.
    targets=$("$cmake" --build "$scratch/build" --target help)
    for target in clcnn_shared clcnn_static; do
        echo "$targets" | grep -qx "\.\.\. $target" ||
            { echo "consume.sh: no target $target under add_subdirectory" >&2; exit 1; }
    done
    for target in clcnn test_npy example_forward; do
        if echo "$targets" | grep -qx "\.\.\. $target"; then
            echo "consume.sh: target $target exists under add_subdirectory" >&2
            exit 1
        fi
    done
    bin=$scratch/build
    ;;
pkg-config)
    if ! command -v pkg-config >/dev/null || ! command -v cc >/dev/null; then
        echo "consume.sh: pkg-config or cc is missing: skipped"
        exit 77
    fi
    "$cmake" --install "$tree" --prefix "$prefix" >"$scratch/install.log"
    pc=$(find "$prefix" -name clcnn.pc)
    [ -n "$pc" ] || { echo "consume.sh: no clcnn.pc installed" >&2; exit 1; }
    export PKG_CONFIG_PATH
    PKG_CONFIG_PATH=$(dirname "$pc")
    libdir=$(pkg-config --variable=libdir clcnn)
    bin=$scratch/bin
    mkdir -p "$bin"
    cc -o "$bin/consumer_shared" "$package/consumer/main.c" $(pkg-config --cflags --libs clcnn)
    # The static library by its file name, then what it needs.
    static_libs=$(pkg-config --libs --static clcnn | sed 's/-lclcnn\b/-l:libclcnn.a/')
    cc -o "$bin/consumer_static" "$package/consumer/main.c" $(pkg-config --cflags clcnn) $static_libs
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ;;
*)
    echo "consume.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac

for program in consumer_shared consumer_static; do
    "$bin/$program"
done
# The shared program really uses the shared library, the static one does not.
if command -v ldd >/dev/null; then
    ldd "$bin/consumer_shared" | grep -q 'libclcnn\.so' ||
        { echo "consume.sh: consumer_shared does not load libclcnn.so" >&2; exit 1; }
    if ldd "$bin/consumer_static" | grep -q libclcnn; then
        echo "consume.sh: consumer_static loads libclcnn" >&2
        exit 1
    fi
fi
# The installed command says the same version as the library.
if [ "$mode" = find_package ]; then
    library=$("$bin/consumer_shared" | sed 's/:.*//')
    command=$("$prefix/bin/clcnn" --version)
    if [ "$command" != "$library" ]; then
        echo "consume.sh: clcnn --version says '$command', the library '$library'" >&2
        exit 1
    fi
fi
echo "consume.sh: $mode: ok"
