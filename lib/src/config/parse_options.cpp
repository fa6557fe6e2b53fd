#include "config/parse_options.hpp"

#include <boost/program_options/parsers.hpp>

namespace prefork::detail {

namespace po = boost::program_options;

prefork::result<po::variables_map> parse_options(int argc, const char* const* argv,
                                                 const po::options_description& options) {
  po::variables_map values;
  try {
    const auto style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    const auto parsed = po::command_line_parser(argc, argv).options(options).style(style).run();
    // Without a positional description Program_options keeps stray words and store() drops
    // them; our programs take none, so say which one was not understood.
    for (const auto& option : parsed.options) {
      if (option.position_key != -1 && !option.value.empty()) {
        return failure{errc::usage, "unexpected argument '" + option.value.front() + "'"};
      }
    }
    po::store(parsed, values);
    po::notify(values);
  } catch (const po::error& error) {
    return failure{errc::usage, error.what()};
  }
  return values;
}

}  // namespace prefork::detail
