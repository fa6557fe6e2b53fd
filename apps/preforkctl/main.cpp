// preforkctl: the command-line client of preforkd's control socket (SPEC section 3).
#include "prefork/preforkctl.hpp"

#include <iostream>

int main(int argc, char** argv) { return prefork::run_preforkctl(argc, argv, std::cout, std::cerr); }
