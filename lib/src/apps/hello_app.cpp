// The built-in `hello` app (SPEC 4): two routes on the public HTTP API.
#include "prefork/http_apps.hpp"

#include "prefork/http/app.hpp"

namespace prefork {

http::router hello_routes() {
  http::router routes;
  routes.get("/", [](const http::request&) { return http::text(200, "Hello, world!\n"); });
  routes.get("/healthz", [](const http::request&) { return http::text(200, "ok\n"); });
  return routes;
}

app make_hello_app() { return http::make_app("hello", hello_routes()); }

}  // namespace prefork
