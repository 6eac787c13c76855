// GrowthTracker: samples per record, deltas oldest first, "growing" only for strict growth at
// every one of the last three intervals, and stacks dropped after four records at zero.
#include "leakcheck/growth_tracker.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace leakcheck {
namespace {

using Deltas = std::vector<std::int64_t>;

class GrowthTrackerTest : public ::testing::Test {
protected:
    StackId stack(RemoteAddr pc) {
        const std::vector<RemoteAddr> pcs{pc};
        return ledger.intern_stack(pcs);
    }
    void alloc(RemoteAddr addr, std::uint64_t size, StackId id) {
        ledger.on_alloc(AllocEvent{addr, size, id, 1, AllocKind::kMalloc, now += 1000});
    }
    void release(RemoteAddr addr) { ledger.on_free(FreeEvent{addr, 0, 1, FreeKind::kFree, now += 1000}); }

    Ledger ledger;
    GrowthTracker growth;
    std::uint64_t now = 1'000'000;
};

TEST_F(GrowthTrackerTest, NeedsFourSamples) {
    const StackId s = stack(0x1000);
    EXPECT_EQ(growth.deltas(s), Deltas{});
    for (RemoteAddr i = 1; i <= 4; ++i) {
        alloc(0x10000 * i, 100, s);
        growth.record(ledger);
        EXPECT_EQ(growth.records(), i);
        EXPECT_EQ(growth.growing(s), i == 4) << i;
    }
    EXPECT_EQ(growth.deltas(s), (Deltas{100, 100, 100}));
    EXPECT_EQ(growth.growth(s), 300);
}

TEST_F(GrowthTrackerTest, OnlyTheLastFourSamplesCount) {
    const StackId s = stack(0x1000);
    // 100, 200, 200, 300, 400, 500: the stall falls out of the window at the sixth record.
    const std::vector<std::uint64_t> sizes{100, 100, 0, 100, 100, 100};
    RemoteAddr addr = 0x10000;
    std::vector<bool> seen;
    for (const std::uint64_t size : sizes) {
        if (size != 0) alloc(addr += 0x100, size, s);
        growth.record(ledger);
        seen.push_back(growth.growing(s));
    }
    EXPECT_EQ(seen, (std::vector<bool>{false, false, false, false, false, true}));
    EXPECT_EQ(growth.deltas(s), (Deltas{100, 100, 100}));
}

TEST_F(GrowthTrackerTest, StableShrinkingOrBumpyIsNotGrowing) {
    const StackId stable = stack(0x1000);
    const StackId shrinking = stack(0x2000);
    const StackId bumpy = stack(0x3000);
    alloc(0x100, 1 << 20, stable);
    for (RemoteAddr i = 0; i < 4; ++i) alloc(0x1000 + i, 10, shrinking);
    growth.record(ledger);  // stable 1M, shrinking 40, bumpy 0
    alloc(0x5000, 10, bumpy);
    release(0x1000);
    growth.record(ledger);  // shrinking 30, bumpy 10
    alloc(0x5001, 10, bumpy);
    release(0x1001);
    growth.record(ledger);  // shrinking 20, bumpy 20
    release(0x5001);
    release(0x1002);
    growth.record(ledger);  // shrinking 10, bumpy 10
    EXPECT_FALSE(growth.growing(stable));
    EXPECT_EQ(growth.deltas(stable), (Deltas{0, 0, 0}));
    EXPECT_FALSE(growth.growing(shrinking));
    EXPECT_EQ(growth.deltas(shrinking), (Deltas{-10, -10, -10}));
    EXPECT_EQ(growth.growth(shrinking), -30);
    EXPECT_FALSE(growth.growing(bumpy));
    EXPECT_EQ(growth.deltas(bumpy), (Deltas{10, 10, -10}));
}

TEST_F(GrowthTrackerTest, NewStackGrowsFromZero) {
    const StackId old = stack(0x1000);
    alloc(0x100, 1, old);
    growth.record(ledger);  // the new stack has nothing yet: its first sample is 0
    const StackId fresh = stack(0x2000);
    for (RemoteAddr i = 0; i < 3; ++i) {
        alloc(0x1000 + i, 8192, fresh);
        growth.record(ledger);
    }
    EXPECT_TRUE(growth.growing(fresh));
    EXPECT_EQ(growth.deltas(fresh), (Deltas{8192, 8192, 8192}));
}

TEST_F(GrowthTrackerTest, DropsStacksAfterFourRecordsAtZero) {
    std::vector<StackId> ids;
    for (RemoteAddr k = 0; k < 1000; ++k) {
        ids.push_back(stack(0x1000 + k));
        alloc(0x100000 + k, 16, ids.back());
    }
    const StackId keeper = stack(0x9999);
    alloc(0x900000, 16, keeper);
    growth.record(ledger);
    EXPECT_EQ(growth.tracked(), 1001u);
    for (RemoteAddr k = 0; k < 1000; ++k) release(0x100000 + k);
    for (int i = 1; i <= 3; ++i) {
        growth.record(ledger);
        EXPECT_EQ(growth.tracked(), 1001u) << i;  // still within the window
    }
    growth.record(ledger);  // four zero samples: the history says nothing any more
    EXPECT_EQ(growth.tracked(), 1u);
    EXPECT_EQ(growth.deltas(ids[0]), (Deltas{0, 0, 0}));
    EXPECT_FALSE(growth.growing(ids[0]));

    // A dropped stack that comes back starts over from zeros and can grow again.
    for (RemoteAddr i = 0; i < 3; ++i) {
        alloc(0x200000 + i, 16, ids[0]);
        growth.record(ledger);
    }
    EXPECT_EQ(growth.deltas(ids[0]), (Deltas{16, 16, 16}));
    EXPECT_TRUE(growth.growing(ids[0]));
    EXPECT_EQ(growth.tracked(), 2u);
}

}  // namespace
}  // namespace leakcheck
