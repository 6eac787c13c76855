// The head every --json object starts with, and one object per line.
#include "leakcheck/json_events.hpp"

namespace leakcheck {

nlohmann::ordered_json json_object(std::string_view type) {
    nlohmann::ordered_json object;
    object["version"] = kJsonSchemaVersion;
    object["type"] = type;
    return object;
}

void write_json_line(std::ostream& out, const nlohmann::ordered_json& object) {
    // Invalid UTF-8 (a path, a symbol) becomes U+FFFD instead of an exception mid-report.
    out << object.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << '\n';
    out.flush();
}

}  // namespace leakcheck
