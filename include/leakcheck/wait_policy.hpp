// How the tracer waits for the traced program's next stop.
//
// A tracer that sleeps in waitpid pays a wake-up for every stop, and on an idle multi-CPU
// machine that wake-up (an inter-processor interrupt to a CPU in a deep idle state) costs several
// times the rest of the round trip; a tracer that polls waitpid(WNOHANG) catches the stop at
// once but burns a CPU while the program runs, and on a busy machine takes that CPU from the
// program. The policy here polls, yielding the CPU between polls (so a runnable program or any
// other task gets it first), for a bounded while, then sleeps; and it polls at all only while
// most recent stops came within that while of the previous resume. An idle or rarely stopping
// program therefore costs no CPU, and an allocation storm is served without wake-ups.
#pragma once

#include <cstdint>

namespace leakcheck {

class WaitPolicy {
public:
    // Learns from the gaps between resume and stop (the default).
    static WaitPolicy adaptive() noexcept;
    // Polls for exactly this long before every sleep (0: never polls).
    static WaitPolicy fixed(std::uint64_t poll_ns) noexcept;

    // How long the next wait polls before it sleeps.
    [[nodiscard]] std::uint64_t budget_ns() const noexcept;
    // One wait's outcome: how long after its start the status was there, and whether it was
    // caught by polling (false: it came in the sleep, or nothing was polled).
    void observe(std::uint64_t gap_ns, bool caught_polling) noexcept;

    struct Stats {
        std::uint64_t waits = 0;
        std::uint64_t caught_polling = 0;  // the stop came while polling
        std::uint64_t polled_then_slept = 0;  // polled the whole budget in vain
        std::uint64_t polled_ns = 0;       // time spent polling in vain, in all
    };
    [[nodiscard]] const Stats& stats() const noexcept { return stats_; }
    [[nodiscard]] bool is_adaptive() const noexcept { return adaptive_; }

    // The adaptive policy's limits: never polls longer than kCeilingNs, nor shorter than
    // kFloorNs; polls at all while at least half of the recent gaps were under the ceiling.
    static constexpr std::uint64_t kCeilingNs = 200'000;
    static constexpr std::uint64_t kFloorNs = 20'000;

private:
    bool adaptive_ = true;
    std::uint64_t fixed_ns_ = 0;
    // Exponential moving averages (weight 1/8): the share of gaps under the ceiling, in 1/1024,
    // and the length of those gaps.
    std::uint32_t short_share_ = 0;
    std::uint64_t short_gap_ns_ = kCeilingNs;
    Stats stats_;
};

}  // namespace leakcheck
