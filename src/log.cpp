// The single diagnostics stream; never the traced program's stdout.
#include "leakcheck/log.hpp"

#include <iostream>

namespace leakcheck {
namespace {
std::ostream* g_stream = nullptr;
bool g_verbose = false;
}  // namespace

std::ostream& log_stream() noexcept { return g_stream ? *g_stream : std::cerr; }
void set_log_stream(std::ostream* stream) noexcept { g_stream = stream; }
void warn(const std::string& message) { log_stream() << "leakcheck: warning: " << message << '\n'; }
void set_verbose(bool verbose) noexcept { g_verbose = verbose; }
bool verbose() noexcept { return g_verbose; }
void debug(const std::string& message) {
    if (g_verbose) log_stream() << "leakcheck: " << message << '\n';
}

}  // namespace leakcheck
