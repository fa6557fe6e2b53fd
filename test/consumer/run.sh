#!/bin/sh
# consumer.find_package: installs the prefork build into a fresh prefix, builds the project
# in this directory against it with find_package(prefork) (with the json-api example from
# apps/examples), runs the programs and their tests.
#   run.sh CMAKE PREFORK_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR
# WORK_DIR is wiped first; it is a fixed path so that ccache hits on reruns.
set -eu
cmake=$1 build=$2 source=$3 work=$4

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
"$cmake" --install "$build" --prefix "$work/prefix" > "$work/install.log"

for file in cmake/prefork/preforkConfig.cmake cmake/prefork/preforkConfigVersion.cmake \
            include/prefork/run.hpp include/prefork/http.hpp include/prefork/detail/channel.hpp bin/preforkd bin/preforkctl; do
  found=$(find "$work/prefix" -path "*/$file" | head -n 1)
  [ -n "$found" ] || { echo "not installed: $file" >&2; exit 1; }
done

generator=
command -v ninja > /dev/null && generator="-G Ninja"
launcher=
command -v ccache > /dev/null && launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
# No build type: no optimisation, no debug info, the fastest build of one TU. The compiler
# and flags come from CXX, CXXFLAGS and LDFLAGS (set by the ctest test like prefork's own).
# shellcheck disable=SC2086
"$cmake" -S "$source" -B "$work/build" $generator $launcher -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DJSON_API_SOURCE="$source/../../apps/examples/json-api/main.cpp"
"$cmake" --build "$work/build"

output=$("$work/build/tiny" --check-config -b unix:tiny.sock -w 2)
echo "$output"
case $output in
  *'"app":"tiny"'*) ;;
  *) echo "tiny --check-config does not serve the app \"tiny\"" >&2; exit 1 ;;
esac
"$work/build/tiny" --version
ctest=ctest
case $cmake in */*) ctest=$(dirname "$cmake")/ctest ;; esac
(cd "$work/build" && "$ctest" --output-on-failure)
echo "consumer.find_package: ok"
