// The time base of events: CLOCK_MONOTONIC, so timestamps never jump with wall-clock changes
// and differences between events are meaningful.
#include "leakcheck/types.hpp"

#include <ctime>

namespace leakcheck {

std::uint64_t now_ns() noexcept {
    timespec ts{};
    // CLOCK_MONOTONIC cannot fail with a valid timespec pointer; no error path to report.
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace leakcheck
