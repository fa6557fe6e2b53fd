// request: views into Beast's parsed message, the query and the path parameters.
#include "prefork/http/request.hpp"

namespace prefork::http {
namespace {

std::string_view to_std(boost::beast::string_view text) noexcept { return {text.data(), text.size()}; }

}  // namespace

request::request(const message& parsed, const worker_context& worker) noexcept
    : message_(&parsed), worker_(&worker), target_(to_std(parsed.target())) {
  const std::size_t question = target_.find('?');
  path_ = target_.substr(0, question);
  if (question != std::string_view::npos) query_ = target_.substr(question + 1);
}

std::string_view request::method_string() const noexcept { return to_std(message_->method_string()); }

std::optional<std::string_view> request::query_parameter(std::string_view name) const noexcept {
  std::string_view rest = query_;
  while (!rest.empty()) {
    const std::size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<std::string_view> request::path_parameter(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < parameter_count_; ++i)
    if (parameters_[i].name == name) return parameters_[i].value;
  return std::nullopt;
}

std::optional<std::string_view> request::header(std::string_view name) const {
  const auto found = message_->find(boost::beast::string_view(name.data(), name.size()));
  if (found == message_->end()) return std::nullopt;
  return to_std(found->value());
}

std::optional<std::string_view> request::header(field name) const {
  const auto found = message_->find(name);
  if (found == message_->end()) return std::nullopt;
  return to_std(found->value());
}

}  // namespace prefork::http
