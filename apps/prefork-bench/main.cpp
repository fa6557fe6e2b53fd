// prefork-bench: the HTTP load generator of scripts/bench (see prefork/bench.hpp).
#include "prefork/bench.hpp"

int main(int argc, char** argv) { return prefork::bench_main(argc, argv); }
