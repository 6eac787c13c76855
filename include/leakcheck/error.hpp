// The one exception type of leakcheck, and the exit statuses the command line maps it to.
// Hot paths (one per ptrace stop) do not throw for expected conditions such as a vanished thread.
#pragma once

#include <stdexcept>
#include <string>

namespace leakcheck {

// Exit statuses of leakcheck's own failures. A traced program's own status is passed through
// unchanged, so these sit where shells and `timeout` put theirs, away from common program codes.
enum class ExitCode : int {
    kUsage = 2,              // bad command line
    kNoAllocator = 120,      // no allocator functions found in the program
    kNoSuchProcess = 121,    // attach: no such PID, or a zombie
    kPermission = 122,       // ptrace refused: other user, ptrace_scope
    kAlreadyTraced = 123,    // another tracer holds the process
    kInternal = 125,         // leakcheck itself failed
    kNotExecutable = 126,    // program exists but cannot be executed
    kNotFound = 127,         // program not found
};

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, ExitCode code = ExitCode::kInternal)
        : std::runtime_error(message), code_(code) {}

    // "what: strerror(errno)", with the current errno.
    [[nodiscard]] static Error from_errno(const std::string& what, ExitCode code = ExitCode::kInternal);

    [[nodiscard]] ExitCode code() const noexcept { return code_; }

private:
    ExitCode code_;
};

}  // namespace leakcheck
