// leakcheck's own diagnostics: one stream (stderr or --log-file), "leakcheck: " prefixed lines.
#pragma once

#include <ostream>
#include <string>

namespace leakcheck {

// Where diagnostics and reports go; stderr until set.
std::ostream& log_stream() noexcept;
void set_log_stream(std::ostream* stream) noexcept;
void warn(const std::string& message);
void set_verbose(bool verbose) noexcept;
bool verbose() noexcept;
void debug(const std::string& message);

}  // namespace leakcheck
