#!/bin/sh
# CTest's "python" test: python/tests with pytest against the build's shared
# library (CLCNN_LIBRARY, set by CTest). It takes the first of PYTHON3 (what
# CMake found, or -DCLCNN_PYTHON3=...), python3 on the PATH and
# /usr/bin/python3 that has numpy and pytest, and is skipped (exit 77, which
# CTest counts as skipped) when none has.
#   python.sh PYTHON3 PYTHON_PACKAGE_DIR
package=$2
python=
for candidate in "$1" python3 /usr/bin/python3; do
    if [ -n "$candidate" ] && "$candidate" -c "import numpy, pytest" 2>/dev/null; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ]; then
    echo "python: skipped: no python3 with numpy and pytest (tried '$1', python3, /usr/bin/python3;"
    echo "apt-get install python3-numpy python3-pytest)"
    exit 77
fi
echo "python: $python"
export PYTHONPATH="$package${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
exec "$python" -m pytest -q -p no:cacheprovider "$package/tests"
