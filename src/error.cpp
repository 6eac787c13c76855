// Error::from_errno: turns the errno of a failed system call into leakcheck's exception, with the
// system's description appended so messages say why, not just what.
#include "leakcheck/error.hpp"

#include <cerrno>
#include <system_error>

namespace leakcheck {

Error Error::from_errno(const std::string& what, ExitCode code) {
    // Read errno before anything else: building strings may allocate and overwrite it.
    const int saved = errno;
    // std::generic_category().message() is strerror's text, but thread-safe (strerror_r inside).
    return Error(what + ": " + std::generic_category().message(saved), code);
}

}  // namespace leakcheck
