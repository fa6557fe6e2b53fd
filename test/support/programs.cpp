#include "support/programs.hpp"

#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

namespace prefork::test_support {

namespace fs = std::filesystem;

fs::path preforkd_path() {
  const char* path = std::getenv("PREFORKD");
  if (path == nullptr || *path == '\0')
    throw std::runtime_error("PREFORKD is not set: it must hold the path of the preforkd binary");
  if (::access(path, X_OK) != 0) throw std::runtime_error(std::string("PREFORKD=") + path + " is not executable");
  return fs::absolute(path);
}

namespace {

fs::path beside_preforkd(const std::string& name) {
  fs::path path = preforkd_path().parent_path() / name;
  if (::access(path.c_str(), X_OK) != 0)
    throw std::runtime_error(name + " is not next to preforkd: " + path.string() + " is not executable");
  return path;
}

}  // namespace

fs::path preforkctl_path() { return beside_preforkd("preforkctl"); }

fs::path kv_server_path() { return beside_preforkd("kv-server"); }

prefork::testing::run_result run_program(const fs::path& program, const std::vector<std::string>& args,
                                         const fs::path& cwd, std::chrono::milliseconds timeout,
                                         const std::vector<std::pair<std::string, std::string>>& environment) {
  prefork::testing::process_options options;
  options.arguments = args;
  options.directory = cwd;
  options.environment = environment;
  auto result = prefork::testing::run(program, options, timeout);
  if (!result.left_behind.empty())
    BOOST_ERROR(program.filename().string() << " left processes behind: " << result.left_behind);
  return result;
}

prefork::testing::run_result run_preforkd(const std::vector<std::string>& args, const fs::path& cwd,
                                          std::chrono::milliseconds timeout) {
  return run_program(preforkd_path(), args, cwd, timeout);
}

prefork::testing::run_result run_preforkctl(const std::vector<std::string>& args, const fs::path& cwd,
                                            std::chrono::milliseconds timeout) {
  return run_program(preforkctl_path(), args, cwd, timeout);
}

}  // namespace prefork::test_support
