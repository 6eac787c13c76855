// The wait policy: when it polls, for how long, and what it counts.
#include "leakcheck/wait_policy.hpp"

#include <gtest/gtest.h>

namespace leakcheck {
namespace {

constexpr std::uint64_t kUs = 1000;

TEST(WaitPolicy, StartsBySleepingUntilStopsComeCloseTogether) {
    WaitPolicy p = WaitPolicy::adaptive();
    EXPECT_EQ(p.budget_ns(), 0u);
    // Five short gaps are not yet half of the recent ones; the sixth is.
    for (int i = 0; i < 5; ++i) p.observe(30 * kUs, false);
    EXPECT_EQ(p.budget_ns(), 0u);
    p.observe(30 * kUs, false);
    EXPECT_GT(p.budget_ns(), 0u);
}

TEST(WaitPolicy, PollsSeveralTimesTheUsualGapWithinItsLimits) {
    WaitPolicy p = WaitPolicy::adaptive();
    for (int i = 0; i < 200; ++i) p.observe(10 * kUs, true);
    // The gap average converges on 10 µs from above; four times it, and never below the floor.
    EXPECT_GE(p.budget_ns(), 40 * kUs);
    EXPECT_LE(p.budget_ns(), 41 * kUs);
    for (int i = 0; i < 200; ++i) p.observe(1 * kUs, true);
    EXPECT_EQ(p.budget_ns(), WaitPolicy::kFloorNs);
    for (int i = 0; i < 200; ++i) p.observe(150 * kUs, true);
    EXPECT_EQ(p.budget_ns(), WaitPolicy::kCeilingNs);
}

TEST(WaitPolicy, StopsPollingWhenTheProgramGoesQuiet) {
    WaitPolicy p = WaitPolicy::adaptive();
    for (int i = 0; i < 50; ++i) p.observe(10 * kUs, true);
    ASSERT_GT(p.budget_ns(), 0u);
    // Long gaps (a program waiting for input): each costs one budget of polling until the
    // short ones are under half of the recent gaps, then none.
    int polled_in_vain = 0;
    for (int i = 0; i < 50; ++i) {
        if (p.budget_ns() != 0) ++polled_in_vain;
        p.observe(5'000 * kUs, false);
    }
    EXPECT_EQ(polled_in_vain, 6);
    EXPECT_EQ(p.budget_ns(), 0u);
    EXPECT_EQ(p.stats().polled_then_slept, 6u);
    EXPECT_EQ(p.stats().caught_polling, 50u);
    EXPECT_EQ(p.stats().waits, 100u);
    // And it polls again once the stops come close together again.
    for (int i = 0; i < 6; ++i) p.observe(20 * kUs, false);
    EXPECT_GT(p.budget_ns(), 0u);
}

TEST(WaitPolicy, FixedPollsTheSameWhateverTheGaps) {
    WaitPolicy p = WaitPolicy::fixed(50 * kUs);
    EXPECT_FALSE(p.is_adaptive());
    for (int i = 0; i < 20; ++i) p.observe(5'000 * kUs, false);
    EXPECT_EQ(p.budget_ns(), 50 * kUs);
    EXPECT_EQ(p.stats().polled_ns, 20 * 50 * kUs);
    WaitPolicy never = WaitPolicy::fixed(0);
    for (int i = 0; i < 20; ++i) never.observe(5 * kUs, false);
    EXPECT_EQ(never.budget_ns(), 0u);
    EXPECT_EQ(never.stats().polled_then_slept, 0u);
}

}  // namespace
}  // namespace leakcheck
