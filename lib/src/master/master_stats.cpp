#include "master/master_stats.hpp"

namespace prefork::detail {

std::array<log_field, 12> stats_fields(const master_stats& stats) {
  return {log_field{"accepted", stats.accepted},
          log_field{"dispatched", stats.dispatched},
          log_field{"redispatched", stats.redispatched},
          log_field{"migrated", stats.migrated},
          log_field{"lost", stats.lost},
          log_field{"accept_pauses", stats.accept_pauses},
          log_field{"worker_exits", stats.worker_exits},
          log_field{"worker_crashes", stats.worker_crashes},
          log_field{"worker_timeouts", stats.worker_timeouts},
          log_field{"worker_recycled", stats.worker_recycled},
          log_field{"reloads", stats.reloads},
          log_field{"requests", stats.requests}};
}

boost::json::object to_json(const master_stats& stats) {
  boost::json::object result;
  for (const log_field& field : stats_fields(stats)) result[field.key] = std::get<std::uint64_t>(field.value);
  return result;
}

}  // namespace prefork::detail
