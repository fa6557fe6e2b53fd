// The state behind prefork::testing::server (server::impl): the master process it
// started, its temp directory and configuration, and the control calls and polls
// (readiness, worker replacement) the public methods are made of.
#pragma once

#include "prefork/control_client.hpp"
#include "prefork/testing.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace prefork::testing {

namespace detail {

/// The integer member `key` of `object`, or `fallback` when it is missing or not one.
std::int64_t number_or(const boost::json::object& object, std::string_view key, std::int64_t fallback);

}  // namespace detail

struct server::impl {
  server_options options;
  std::optional<temp_directory> directory_owner;  // declared before `master`: removed after it stopped
  std::filesystem::path directory;
  boost::json::object config;
  std::filesystem::path control_path;
  mutable std::mutex address_mutex;  // session() may be called from other threads
  std::string first_address;         // bind syntax; from `status` (at first from the config)
  std::optional<process> master;
  pid_t pid = -1;
  bool stopped = false;  // stop() finished (or the hard clean-up ran)
  control_client control;
  std::optional<http_session> session;

  ~impl();

  void launch();

  void set_first_address(std::string address);

  // The first listener's address; throws when it is not known yet.
  std::string listener_address() const;

  std::optional<std::filesystem::path> first_unix_bind() const;

  bool running() { return master && master->running(); }
  const std::optional<exit_status>& exit() const;

  // The clean-up of last resort (constructor failure, destructor after a failed stop):
  // kill everything, reap the master, never throw.
  void kill_everything() noexcept;

  exit_status stop(stop_mode mode);

  // A request that only reads, and so may be sent twice.
  static bool read_only(const boost::json::object& request);

  result<boost::json::value> try_control(const boost::json::object& request, std::chrono::milliseconds timeout);

  boost::json::value call(const boost::json::object& request, std::chrono::milliseconds timeout);

  std::string log_tail(std::size_t lines) const;

  // Polls `status` (or whatever `check` asks) until `check` says done; `check` fills
  // `seen` with what it saw, for the message. Throws on timeout or when the master exits.
  void wait_until(const std::function<bool(std::string& seen)>& check, std::chrono::milliseconds timeout,
                  std::string_view what);

  // One status poll: the reply's `workers` object, or nullopt (with `seen` saying why).
  std::optional<boost::json::object> poll_workers(std::string& seen);

  void wait_ready(std::chrono::milliseconds timeout);

  pid_t worker_pid(int id);

  void wait_replaced(pid_t old_pid);
};

}  // namespace prefork::testing
