// The programs under test, found beside $PREFORKD, and one-shot runs of them through
// prefork::testing::run that also fail the test when a run leaves a process behind.
#pragma once

#include "prefork/testing/process.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace prefork::test_support {

/// The preforkd binary from $PREFORKD (made absolute). Throws std::runtime_error when
/// unset or not executable.
std::filesystem::path preforkd_path();
/// preforkctl, next to preforkd. Throws std::runtime_error when missing or not executable.
std::filesystem::path preforkctl_path();
/// The example program kv-server (apps/examples), next to preforkd. Throws
/// std::runtime_error when missing or not executable.
std::filesystem::path kv_server_path();

/// testing::run of `program args...` in `cwd` with `environment` added; a process left
/// behind (then killed) fails the test with BOOST_ERROR. Throws std::runtime_error when
/// the program cannot be started.
prefork::testing::run_result run_program(const std::filesystem::path& program, const std::vector<std::string>& args,
                                         const std::filesystem::path& cwd, std::chrono::milliseconds timeout,
                                         const std::vector<std::pair<std::string, std::string>>& environment = {});

/// run_program(preforkd_path(), ...).
prefork::testing::run_result run_preforkd(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                                          std::chrono::milliseconds timeout = std::chrono::seconds(20));
/// run_program(preforkctl_path(), ...).
prefork::testing::run_result run_preforkctl(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace prefork::test_support
