// leakcheck's own diagnostics: one stream (stderr or --log-file), "leakcheck: " prefixed lines,
// or with --json one object per line ({"type": "warning" | "verbose" | "error", "message"}).
#pragma once

#include <ostream>
#include <string>

namespace leakcheck {

// Where diagnostics and reports go; stderr until set.
std::ostream& log_stream() noexcept;
void set_log_stream(std::ostream* stream) noexcept;
// --json: the diagnostics below are written as JSON objects (json_events.hpp).
void set_json_log(bool json) noexcept;
bool json_log() noexcept;
void warn(const std::string& message);
void set_verbose(bool verbose) noexcept;
bool verbose() noexcept;
void debug(const std::string& message);
// "leakcheck: error: MESSAGE": leakcheck failed and is about to end (with its own status).
void note_error(const std::string& message);

}  // namespace leakcheck
