// The --json stream: every line leakcheck writes is one JSON object that starts with the
// schema's "version" and its "type". This is that head and the line writer; the report
// (json_report.hpp), the diagnostics (log.hpp) and the command line's events fill in the rest.
#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <string_view>

namespace leakcheck {

// Raised when a key changes meaning or goes away; new keys and types keep the version.
inline constexpr int kJsonSchemaVersion = 1;

// {"version": kJsonSchemaVersion, "type": type}, for the caller to add its keys to.
nlohmann::ordered_json json_object(std::string_view type);

// The object on one line, flushed, so that a reader of a pipe sees each event as it happens.
void write_json_line(std::ostream& out, const nlohmann::ordered_json& object);

}  // namespace leakcheck
