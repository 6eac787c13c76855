// The single diagnostics stream; never the traced program's stdout.
#include "leakcheck/log.hpp"

#include <iostream>

#include "leakcheck/json_events.hpp"

namespace leakcheck {
namespace {
std::ostream* g_stream = nullptr;
bool g_verbose = false;
bool g_json = false;

void write(const char* type, const char* prefix, const std::string& message) {
    if (g_json) {
        nlohmann::ordered_json object = json_object(type);
        object["message"] = message;
        write_json_line(log_stream(), object);
    } else {
        log_stream() << "leakcheck: " << prefix << message << '\n';
    }
}
}  // namespace

std::ostream& log_stream() noexcept { return g_stream ? *g_stream : std::cerr; }
void set_log_stream(std::ostream* stream) noexcept { g_stream = stream; }
void set_json_log(bool json) noexcept { g_json = json; }
bool json_log() noexcept { return g_json; }
void warn(const std::string& message) { write("warning", "warning: ", message); }
void set_verbose(bool verbose) noexcept { g_verbose = verbose; }
bool verbose() noexcept { return g_verbose; }
void debug(const std::string& message) {
    if (g_verbose) write("verbose", "", message);
}
void note_error(const std::string& message) { write("error", "error: ", message); }

}  // namespace leakcheck
