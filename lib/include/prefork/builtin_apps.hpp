// The apps preforkd ships (SPEC section 4): hello (http_apps.hpp), testbed (hello plus
// fault injection for test harnesses; both on the public HTTP API, prefork/http.hpp) and
// echo (a raw byte echo, not HTTP).
#pragma once

#include "prefork/app.hpp"
#include "prefork/http_apps.hpp"

#include <vector>

namespace prefork {

/// The built-in HTTP app "testbed": every route and limit of hello (make_hello_app), plus
/// fault injection for test harnesses. Never use it in production: every worker logs a
/// warning saying so when it starts (on_worker_start).
///   GET /whoami     -> 200 application/json `{"worker":ID,"pid":PID,"generation":G}`
///   GET /sleep?ms=N -> 200 after N ms; the worker serves other connections meanwhile
///   GET /burn?ms=N  -> 200 after blocking the worker's event loop N ms (busy loop)
///   GET /crash      -> the worker calls std::abort(); nothing is answered
///   GET /hang       -> the worker's event loop blocks forever (no heartbeat: the master
///                      kills it after `timeout`); nothing is answered
///   POST /echo      -> 200 application/octet-stream, the request body
///   GET /throw      -> the handler throws: 500 `Internal Server Error`, an error line in the
///                      log (with the worker's id); the worker and the connection go on
/// HEAD is allowed where it is harmless (/whoami, /sleep, /burn, /throw; it does the work and
/// drops the body); another method on a testbed path is 405 with `Allow: GET, HEAD`,
/// `Allow: GET` (/crash, /hang: a HEAD probe must not kill a worker) or `Allow: POST`.
/// N is the query parameter `ms`, a decimal integer 0..60000; when it is missing, not a
/// number (`-1`, `abc`, empty) or larger, the answer is 400 with a text/plain message
/// naming the problem. Any other path is hello's (/, /healthz, else 404).
app make_testbed_app();

/// The built-in app "echo": not HTTP. Writes back every byte it reads, in order, until the
/// client half-closes (EOF), then closes its side once everything read was written back.
/// A connection that makes no progress for `keepalive` seconds is closed: idle with nothing
/// unread, or with an echo the client does not read (a client that never reads cannot pin
/// a worker). A draining worker closes its idle echo connections (nothing unread); one
/// with bytes pending is served until it is idle. Counts one request per connection
/// (worker_context::count_request), once its first bytes have been echoed; a connection
/// that sends nothing counts none. Socket errors end the connection (logged at debug).
app make_echo_app();

/// hello, testbed, echo, in this order: what preforkd registers with prefork::run.
std::vector<app> builtin_apps();

}  // namespace prefork
