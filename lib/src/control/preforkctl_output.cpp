// preforkctl's human output: the master's JSON answers as tables, key: value lines and
// short sentences (--json prints them as they came).
#include "control/preforkctl_internal.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace prefork::detail::preforkctl {
namespace {

namespace json = boost::json;

std::string duration_text(const json::object& object, std::string_view key_ms) {
  auto ms = number_of(object, key_ms);
  if (!ms) return text_of(object, key_ms);
  if (*ms < 1000) return printf_text("%.0fms", *ms);
  return printf_text("%.1fs", *ms / 1000);
}

std::string bytes_text(const json::object& object, std::string_view key) {
  auto bytes = number_of(object, key);
  if (!bytes) return text_of(object, key);
  constexpr std::array<const char*, 4> units{"K", "M", "G", "T"};
  if (*bytes < 1024) return printf_text("%.0fB", *bytes);
  double value = *bytes / 1024;
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < units.size()) {
    value /= 1024;
    ++unit;
  }
  return printf_text(value < 10 ? "%.1f" : "%.0f", value) + units[unit];
}

void print_pretty(std::ostream& out, const json::value& value, int indent) {
  const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  if (const json::object* object = value.if_object()) {
    if (object->empty()) {
      out << "{}";
      return;
    }
    out << "{\n";
    bool first = true;
    for (const auto& member : *object) {
      if (!first) out << ",\n";
      first = false;
      out << pad << "  " << json::serialize(member.key()) << ": ";
      print_pretty(out, member.value(), indent + 1);
    }
    out << "\n" << pad << "}";
  } else if (const json::array* array = value.if_array()) {
    if (array->empty()) {
      out << "[]";
      return;
    }
    out << "[\n";
    bool first = true;
    for (const auto& element : *array) {
      if (!first) out << ",\n";
      first = false;
      out << pad << "  ";
      print_pretty(out, element, indent + 1);
    }
    out << "\n" << pad << "]";
  } else {
    out << json::serialize(value);
  }
}

void print_status(std::ostream& out, const json::value& result) {
  const json::object* status = result.if_object();
  if (status == nullptr) {
    out << json::serialize(result) << "\n";
    return;
  }
  constexpr int width = 12;
  auto row = [&](std::string_view label, const std::string& value) {
    std::string key = std::string(label) + ":";
    key.resize(width, ' ');
    out << key << value << "\n";
  };
  const std::array<std::string_view, 8> shown{"state",      "pid",     "version",  "uptime_s",
                                              "generation", "workers", "dispatch", "listeners"};
  if (status->contains("state")) row("state", text_of(*status, "state"));
  if (status->contains("pid")) row("pid", text_of(*status, "pid"));
  if (status->contains("version")) row("version", text_of(*status, "version"));
  if (auto uptime = number_of(*status, "uptime_s")) row("uptime", printf_text("%.1f s", *uptime));
  if (status->contains("generation")) row("generation", text_of(*status, "generation"));
  if (const json::value* workers = status->if_contains("workers")) {
    if (const json::object* counts = workers->if_object()) {
      std::string text;
      for (std::string_view key : {"desired", "ready", "starting", "draining"}) {
        if (!text.empty()) text += ", ";
        text += text_of(*counts, key) + " " + std::string(key);
      }
      row("workers", text);
    } else {
      row("workers", text_of(*workers));
    }
  }
  if (status->contains("dispatch")) row("dispatch", text_of(*status, "dispatch"));
  if (const json::value* listeners = status->if_contains("listeners")) {
    const json::array* list = listeners->if_array();
    if (list == nullptr || list->empty()) row("listeners", list ? "none" : text_of(*listeners));
    bool first = true;
    static const json::array no_listeners;
    for (const auto& entry : list ? *list : no_listeners) {
      std::string text;
      if (const json::object* listener = entry.if_object())
        text = text_of(*listener, "bind") + " (" + text_of(*listener, "address") + ")";
      else
        text = text_of(entry);
      if (first)
        row("listeners", text);
      else
        out << std::string(width, ' ') << text << "\n";
      first = false;
    }
  }
  for (const auto& member : *status) {  // whatever a newer master adds
    const std::string_view key(member.key().data(), member.key().size());
    if (std::find(shown.begin(), shown.end(), key) != shown.end()) continue;
    row(key, text_of(member.value()));
  }
}

void print_workers(std::ostream& out, const json::value& result) {
  const json::array* workers = result.if_array();
  if (workers == nullptr) {
    out << json::serialize(result) << "\n";
    return;
  }
  std::vector<std::array<std::string, 9>> rows;
  rows.push_back({"ID", "PID", "GEN", "STATE", "ACTIVE", "SERVED", "STARTED", "HEARTBEAT", "RSS"});
  for (const auto& entry : *workers) {
    const json::object* worker = entry.if_object();
    if (worker == nullptr) continue;
    rows.push_back({text_of(*worker, "id"), text_of(*worker, "pid"), text_of(*worker, "generation"),
                    text_of(*worker, "state"), text_of(*worker, "active"), text_of(*worker, "served"),
                    text_of(*worker, "started_at"), duration_text(*worker, "last_heartbeat_ms"),
                    bytes_text(*worker, "rss_bytes")});
  }
  std::array<std::size_t, 9> widths{};
  for (const auto& row : rows)
    for (std::size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(widths[c] - row[c].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

void print_stats(std::ostream& out, const json::value& result) {
  const json::object* stats = result.if_object();
  if (stats == nullptr) {
    out << json::serialize(result) << "\n";
    return;
  }
  for (const auto& member : *stats)
    out << std::string_view(member.key().data(), member.key().size()) << ": " << text_of(member.value()) << "\n";
}

}  // namespace

/// A scalar as people read it: strings without quotes, null as "-".
std::string text_of(const json::value& value) {
  if (value.is_string()) return std::string(value.get_string());
  if (value.is_null()) return "-";
  return json::serialize(value);
}

std::string text_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value ? text_of(*value) : "-";
}

std::optional<double> number_of(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  if (value == nullptr) return std::nullopt;
  if (value->is_int64()) return static_cast<double>(value->get_int64());
  if (value->is_uint64()) return static_cast<double>(value->get_uint64());
  if (value->is_double()) return value->get_double();
  return std::nullopt;
}

std::string printf_text(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

void print_human(std::ostream& out, const invocation& call, const json::value& result) {
  const std::string_view name = call.command->name;
  const json::object* object = result.if_object();
  auto field = [&](std::string_view key) { return object ? text_of(*object, key) : std::string("-"); };
  if (name == "ping") {
    out << text_of(result) << "\n";
  } else if (name == "status") {
    print_status(out, result);
  } else if (name == "workers") {
    print_workers(out, result);
  } else if (name == "stats") {
    print_stats(out, result);
  } else if (name == "config") {
    print_pretty(out, result, 0);
    out << "\n";
  } else if (name == "scale") {
    out << "desired: " << field("desired") << "\n";
  } else if (name == "reload") {
    out << (call.wait ? "reloaded: generation " : "reload started: generation ") << field("generation") << "\n";
  } else if (name == "stop") {
    out << (call.fast ? "stopping (fast)" : "stopping") << "\n";
  } else if (name == "kill-worker") {
    out << "sent " << call.signal.value_or("TERM") << " to worker " << call.positionals[0] << " (pid " << field("pid")
        << ")\n";
  } else if (name == "pause-worker") {
    out << "worker " << call.positionals[0] << " paused\n";
  } else if (name == "resume-worker") {
    out << "worker " << call.positionals[0] << " resumed\n";
  } else if (name == "reopen-logs") {
    out << "logs reopened\n";
  } else {
    out << json::serialize(result) << "\n";
  }
}

}  // namespace prefork::detail::preforkctl
