#!/bin/sh
# consumer.find_package: installs the prefork build into a fresh prefix, builds the project
# in this directory against it with find_package(prefork) (with the json-api example from
# apps/examples), runs the programs and their tests. It also checks what the package
# promises: the project sees nothing of prefork's library source or build tree, the
# installed library carries no debug info (unless the build asked for it with
# PREFORK_INSTALL_DEBUG_INFO=ON), its Asio is the program's (asio_shared), and the Boost
# release series it was built with is accepted and another is refused.
#   run.sh CMAKE PREFORK_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR
# WORK_DIR is wiped first; it is a fixed path so that ccache hits on reruns.
set -eu
cmake=$1 build=$2 source=$3 work=$4

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
build=$(cd "$build" && pwd)
source=$(cd "$source" && pwd)
prefork_source=$(cd "$source/../.." && pwd)
"$cmake" --install "$build" --prefix "$work/prefix" > "$work/install.log"

for file in cmake/prefork/preforkConfig.cmake cmake/prefork/preforkConfigVersion.cmake \
            include/prefork/run.hpp include/prefork/http.hpp bin/preforkd bin/preforkctl; do
  found=$(find "$work/prefix" -path "*/$file" | head -n 1)
  [ -n "$found" ] || { echo "not installed: $file" >&2; exit 1; }
done
# Only the API is installed: the implementation's headers stay in prefork's source tree.
if [ -e "$work/prefix/include/prefork/detail" ] || find "$work/prefix/include" -name master.hpp | grep -q .; then
  echo "implementation headers were installed (only lib/include/prefork is API)" >&2
  exit 1
fi
for name in libprefork.a libprefork_testing.a libprefork_bench.a; do
  library=$(find "$work/prefix" -name "$name" | head -n 1)
  [ -n "$library" ] || { echo "not installed: $name" >&2; exit 1; }
  if ! grep -q '^PREFORK_INSTALL_DEBUG_INFO:BOOL=ON' "$build/CMakeCache.txt" &&
     objdump -h "$library" | grep -q '\.debug_info'; then
    echo "the installed $library carries debug info (only PREFORK_INSTALL_DEBUG_INFO=ON may keep it)" >&2
    exit 1
  fi
done
library=$(find "$work/prefix" -name libprefork.a | head -n 1)

generator=
command -v ninja > /dev/null && generator="-G Ninja"
launcher=
command -v ccache > /dev/null && launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
# No build type: no optimisation, no debug info, the fastest build of one TU. The compiler
# and flags come from CXX, CXXFLAGS and LDFLAGS (set by the ctest test like prefork's own).
# shellcheck disable=SC2086
"$cmake" -S "$source" -B "$work/build" $generator $launcher -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DJSON_API_SOURCE="$prefork_source/apps/examples/json-api/main.cpp" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
"$cmake" --build "$work/build"

# Built against the installed package only: prefork found in the prefix, its headers
# included from there, nothing from prefork's source or build tree.
grep -q "^prefork_DIR:PATH=$work/prefix/" "$work/build/CMakeCache.txt" ||
  { echo "find_package(prefork) did not find the installed package in $work/prefix" >&2; exit 1; }
grep -q "$work/prefix/include" "$work/build/compile_commands.json" ||
  { echo "the project does not include prefork's installed headers" >&2; exit 1; }
if grep -e "$prefork_source/lib" -e "$build/lib" "$work/build/compile_commands.json" "$work/build/build.ninja" \
     2> /dev/null; then
  echo "the project uses prefork's source or build tree, not only the installed package" >&2
  exit 1
fi

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

# The Boost the package accepts: the release series it was built with (1.81.x), not an
# older or newer one (libprefork.a is compiled against that release's headers and
# libraries). Stand-in Boost packages of other versions, found instead of the real one, show
# it (an older one is refused by Boost's version file, a newer one by prefork's package).
# The series is the one prefork's build found.
series=$(sed -n 's/^Boost_DIR:PATH=.*Boost-\([0-9]*\.[0-9]*\)\.[0-9]*$/\1/p' "$build/CMakeCache.txt")
[ -n "$series" ] || { echo "no Boost_DIR ending in Boost-X.Y.Z in $build/CMakeCache.txt" >&2; exit 1; }
major=${series%.*} minor=${series#*.}
probe() {  # probe VERSION: configures a project that finds prefork with a stand-in Boost VERSION
  fake="$work/boost-$1"
  mkdir -p "$fake/cmake" "$fake/probe"
  cat > "$fake/cmake/BoostConfigVersion.cmake" <<VERSION
set(PACKAGE_VERSION $1)  # as Boost's own: compatible with any request not above it
if(PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
VERSION
  cat > "$fake/cmake/BoostConfig.cmake" <<CONFIG
foreach(component IN LISTS Boost_FIND_COMPONENTS)
  set(Boost_\${component}_FOUND TRUE)
endforeach()
CONFIG
  printf 'cmake_minimum_required(VERSION 3.25)\nproject(probe LANGUAGES CXX)\nfind_package(prefork CONFIG REQUIRED)\n' \
    > "$fake/probe/CMakeLists.txt"
  # / and /usr are not searched: CMake would fall back on the real Boost there.
  # shellcheck disable=SC2086
  "$cmake" -S "$fake/probe" -B "$fake/build" $generator -DCMAKE_PREFIX_PATH="$work/prefix" \
    -DBoost_DIR="$fake/cmake" "-DCMAKE_IGNORE_PREFIX_PATH=/usr;/" > "$fake/configure.log" 2>&1
}
probe "$series.9" || { cat "$work/boost-$series.9/configure.log" >&2; echo "prefork refused Boost $series.9" >&2; exit 1; }
for other in "$major.$((minor - 1)).0" "$major.$((minor + 1)).0"; do
  if probe "$other"; then
    echo "prefork accepted Boost $other" >&2
    exit 1
  fi
done
grep -q "needs Boost $series.x" "$work/boost-$major.$((minor + 1)).0/configure.log" ||
  { cat "$work/boost-$major.$((minor + 1)).0/configure.log" >&2; echo "no clear message refusing a newer Boost" >&2; exit 1; }

# A service links the runtime only: tiny (prefork::prefork) holds none of the test harness
# or the load generator, which its tests (prefork::testing) do.
if nm -C "$work/build/tiny" | grep -q -e 'prefork::testing::' -e 'prefork::run_bench'; then
  echo "tiny, linked with prefork::prefork only, contains the test harness or the bench engine" >&2
  exit 1
fi
nm -C "$work/build/tiny_tests" | grep -q 'prefork::testing::' ||
  { echo "tiny_tests does not contain prefork::testing (is the check above blind?)" >&2; exit 1; }

# prefork logs through its own logger and leaves a program's Boost.Log alone: the package
# neither links Boost.Log nor decides how the program links it (BOOST_LOG_DYN_LINK).
package_dir=$(dirname "$(find "$work/prefix" -name preforkConfig.cmake | head -n 1)")
if grep -e 'Boost::log' -e 'BOOST_LOG' -e ' log ' "$package_dir"/*.cmake; then
  echo "the installed package makes its users link or configure Boost.Log" >&2
  exit 1
fi
if command -v ldd > /dev/null && ldd "$work/build/tiny" | grep -q 'libboost_log'; then
  echo "tiny, linked with prefork::prefork, loads libboost_log" >&2
  exit 1
fi

echo "consumer.find_package: ok (installed libprefork.a: $(wc -c < "$library") bytes;" \
     "tiny: $(wc -c < "$work/build/tiny") bytes)"
