// The wait policy's bookkeeping (see wait_policy.hpp).
#include "leakcheck/wait_policy.hpp"

#include <algorithm>

namespace leakcheck {

WaitPolicy WaitPolicy::adaptive() noexcept { return WaitPolicy{}; }

WaitPolicy WaitPolicy::fixed(std::uint64_t poll_ns) noexcept {
    WaitPolicy p;
    p.adaptive_ = false;
    p.fixed_ns_ = poll_ns;
    return p;
}

std::uint64_t WaitPolicy::budget_ns() const noexcept {
    if (!adaptive_) return fixed_ns_;
    if (short_share_ < 512) return 0;
    // Room for the usual gap several times over: a poll that gives up just before the stop
    // comes costs the poll and the wake-up both.
    return std::clamp(4 * short_gap_ns_, kFloorNs, kCeilingNs);
}

void WaitPolicy::observe(std::uint64_t gap_ns, bool caught_polling) noexcept {
    const std::uint64_t budget = budget_ns();
    ++stats_.waits;
    if (caught_polling) {
        ++stats_.caught_polling;
    } else if (budget != 0) {
        ++stats_.polled_then_slept;
        stats_.polled_ns += budget;
    }
    if (!adaptive_) return;
    const bool is_short = gap_ns <= kCeilingNs;
    short_share_ = short_share_ - short_share_ / 8 + (is_short ? 1024 / 8 : 0);
    if (is_short) short_gap_ns_ = short_gap_ns_ - short_gap_ns_ / 8 + gap_ns / 8;
}

}  // namespace leakcheck
