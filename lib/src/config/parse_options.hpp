// The command-line parsing step preforkd and prefork-bench share: Boost.Program_options
// without prefix guessing, stray words refused, every error as a failure.
#pragma once

#include "prefork/error.hpp"

#include <boost/program_options/options_description.hpp>
#include <boost/program_options/variables_map.hpp>
#include <boost/system/result.hpp>

namespace prefork::detail {

/// Parses argv against `options` (which must outlive the call) into a variables_map.
/// No prefix guessing ("--check" never means --check-config); a positional word is an
/// error naming it (`unexpected argument 'serve'`); Program_options' own errors (unknown
/// option, missing value, repeated option) come back with its message.
prefork::result<boost::program_options::variables_map> parse_options(
    int argc, const char* const* argv, const boost::program_options::options_description& options);

}  // namespace prefork::detail
