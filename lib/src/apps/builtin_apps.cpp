// The list of apps preforkd registers (builtin_apps.hpp); each app lives in its own file.
#include "prefork/builtin_apps.hpp"

namespace prefork {

std::vector<app> builtin_apps() { return {make_hello_app(), make_testbed_app(), make_echo_app()}; }

}  // namespace prefork
