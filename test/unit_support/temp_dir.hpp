// A scratch directory for a unit test, removed with its content at the end of the test:
// prefork::testing::temp_directory with the string paths the socket tests pass around.
#pragma once

#include "prefork/testing/process.hpp"

#include <string>

namespace prefork::unit_support {

struct temp_dir {
  prefork::testing::temp_directory directory{"prefork-unit"};
  /// The directory (absolute, short enough for Unix socket paths below it).
  const std::string path = directory.path().string();

  /// path + "/" + name.
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

}  // namespace prefork::unit_support
