// prefork::testing, the harness for integration tests of prefork programs (see README,
// "Use prefork in your integration tests"):
// - server: a preforkd (or a program built on prefork::run) started in a fresh temp
//   directory, ready when the constructor returns, stopped leaving nothing behind;
// - http_session: a blocking keep-alive HTTP client with timeouts: any method and headers,
//   JSON helpers, and connection reuse a test can see;
// - process, run: other programs beside it, and one-shot commands, each in its own group.
#pragma once

#include "prefork/testing/http_session.hpp"
#include "prefork/testing/process.hpp"
#include "prefork/testing/server.hpp"
