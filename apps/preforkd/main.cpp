// preforkd: the prefork supervisor with the built-in apps.
#include "prefork/builtin_apps.hpp"
#include "prefork/run.hpp"

int main(int argc, char** argv) { return prefork::run(argc, argv, prefork::builtin_apps()); }
