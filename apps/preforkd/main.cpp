// preforkd: the prefork supervisor with the built-in apps.
#include "prefork/builtin_apps.hpp"
#include "prefork/run.hpp"

int main(int argc, char** argv) {
  prefork::run_options options;
  options.version = prefork::version();  // preforkd is prefork's own program
  return prefork::run(argc, argv, prefork::builtin_apps(), std::move(options));
}
