// Everything a program needs to serve its own HTTP handlers under prefork:
//   prefork::http::router r;
//   r.get("/health", [](const prefork::http::request&) { return prefork::http::text(200, "ok\n"); });
//   return prefork::run(argc, argv, {prefork::http::make_app("api", std::move(r))});
#pragma once

#include "prefork/http/app.hpp"
#include "prefork/http/json.hpp"
#include "prefork/http/request.hpp"
#include "prefork/http/response.hpp"
#include "prefork/http/router.hpp"
