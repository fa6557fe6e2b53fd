#include "master/worker_record.hpp"

namespace prefork::detail {

worker_record::worker_record(int id_, std::uint64_t generation_, std::shared_ptr<const config> settings_)
    : id(id_),
      generation(generation_),
      settings(std::move(settings_)),
      backoff(settings->restart),
      heartbeat(settings->timeout, std::chrono::steady_clock::now()) {}

}  // namespace prefork::detail
