// Ledger: the accounting rules (realloc as free + alloc, a live address handed out again,
// frees of unknown blocks, time since the first event) and the order of top_stacks.
#include "leakcheck/ledger.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

namespace leakcheck {
namespace {

constexpr std::uint64_t kT0 = 5'000'000'000;  // an arbitrary CLOCK_MONOTONIC reading

AllocEvent alloc(RemoteAddr addr, std::uint64_t size, StackId stack, std::uint64_t t = kT0,
                 AllocKind kind = AllocKind::kMalloc) {
    return AllocEvent{addr, size, stack, 42, kind, t};
}

FreeEvent release(RemoteAddr addr, std::uint64_t t = kT0, FreeKind kind = FreeKind::kFree) {
    return FreeEvent{addr, 0, 42, kind, t};
}

StackId stack(Ledger& ledger, RemoteAddr pc) {
    const RemoteAddr pcs[] = {pc, 0x401000};
    return ledger.intern_stack(pcs);
}

void expect_stats(const StackStats& s, std::uint64_t live_bytes, std::uint64_t live_blocks,
                  std::uint64_t total_bytes, std::uint64_t total_blocks) {
    EXPECT_EQ(s.live_bytes, live_bytes);
    EXPECT_EQ(s.live_blocks, live_blocks);
    EXPECT_EQ(s.total_bytes, total_bytes);
    EXPECT_EQ(s.total_blocks, total_blocks);
}

TEST(Ledger, InternStackGoesToItsStackTable) {
    Ledger ledger;
    const StackId a = stack(ledger, 0x402000);
    EXPECT_EQ(stack(ledger, 0x402000), a);
    EXPECT_NE(stack(ledger, 0x403000), a);
    EXPECT_EQ(ledger.stacks().size(), 3u);
    EXPECT_EQ(ledger.stacks().pcs(a)[0], 0x402000u);
}

TEST(Ledger, AllocAndFree) {
    Ledger ledger;
    const StackId s = stack(ledger, 0x402000);
    ledger.on_alloc(alloc(0x1000, 100, s));
    ledger.on_alloc(alloc(0x2000, 50, s));
    ledger.on_free(release(0x1000));

    const LedgerTotals& t = ledger.totals();
    EXPECT_EQ(t.allocs, 2u);
    EXPECT_EQ(t.alloc_bytes, 150u);
    EXPECT_EQ(t.frees, 1u);
    EXPECT_EQ(t.unknown_frees, 0u);
    EXPECT_EQ(t.live_blocks, 1u);
    EXPECT_EQ(t.live_bytes, 50u);
    expect_stats(ledger.stack_stats(s), 50, 1, 150, 2);
    EXPECT_EQ(ledger.find(0x1000), nullptr);
    ASSERT_NE(ledger.find(0x2000), nullptr);
    EXPECT_EQ(ledger.find(0x2000)->size, 50u);
    EXPECT_EQ(ledger.find(0x2000)->tid, 42);
    EXPECT_EQ(ledger.live().size(), 1u);
}

TEST(Ledger, ReallocMovingTheBlockIsFreeThenAlloc) {
    Ledger ledger;
    const StackId first = stack(ledger, 0x402000);
    const StackId grown = stack(ledger, 0x403000);
    ledger.on_alloc(alloc(0x1000, 100, first));
    // realloc(0x1000, 200) returning 0x5000: the engine reports the old block's release and
    // the new block, which belongs to the realloc's own stack.
    ledger.on_free(release(0x1000, kT0, FreeKind::kRealloc));
    ledger.on_alloc(alloc(0x5000, 200, grown, kT0, AllocKind::kRealloc));

    const LedgerTotals& t = ledger.totals();
    EXPECT_EQ(t.allocs, 2u);
    EXPECT_EQ(t.alloc_bytes, 300u);
    EXPECT_EQ(t.frees, 1u);
    EXPECT_EQ(t.unknown_frees, 0u);
    EXPECT_EQ(t.live_blocks, 1u);
    EXPECT_EQ(t.live_bytes, 200u);
    expect_stats(ledger.stack_stats(first), 0, 0, 100, 1);
    expect_stats(ledger.stack_stats(grown), 200, 1, 200, 1);
    EXPECT_EQ(ledger.find(0x1000), nullptr);
    ASSERT_NE(ledger.find(0x5000), nullptr);
    EXPECT_EQ(ledger.find(0x5000)->kind, AllocKind::kRealloc);
    EXPECT_EQ(ledger.find(0x5000)->stack, grown);
}

TEST(Ledger, ReallocInPlaceKeepsTheAddressWithTheNewSize) {
    Ledger ledger;
    const StackId s = stack(ledger, 0x402000);
    ledger.on_alloc(alloc(0x1000, 100, s));
    ledger.on_free(release(0x1000, kT0, FreeKind::kRealloc));
    ledger.on_alloc(alloc(0x1000, 40, s, kT0, AllocKind::kRealloc));
    EXPECT_EQ(ledger.totals().frees, 1u);
    EXPECT_EQ(ledger.totals().live_bytes, 40u);
    EXPECT_EQ(ledger.totals().live_blocks, 1u);
    expect_stats(ledger.stack_stats(s), 40, 1, 140, 2);
    EXPECT_EQ(ledger.find(0x1000)->size, 40u);
}

TEST(Ledger, ReallocToZeroIsAFree) {
    Ledger ledger;
    const StackId s = stack(ledger, 0x402000);
    ledger.on_alloc(alloc(0x1000, 100, s));
    ledger.on_free(release(0x1000, kT0, FreeKind::kRealloc));
    EXPECT_EQ(ledger.totals().frees, 1u);
    EXPECT_EQ(ledger.totals().live_blocks, 0u);
    EXPECT_EQ(ledger.totals().live_bytes, 0u);
    EXPECT_TRUE(ledger.top_stacks(10).empty());
}

TEST(Ledger, LiveAddressAllocatedAgainIsACountedMissedRelease) {
    Ledger ledger;
    const StackId old_stack = stack(ledger, 0x402000);
    const StackId new_stack = stack(ledger, 0x403000);
    ledger.on_alloc(alloc(0x1000, 64, old_stack));
    ledger.on_alloc(alloc(0x1000, 32, new_stack));  // its free was missed

    const LedgerTotals& t = ledger.totals();
    EXPECT_EQ(t.allocs, 2u);
    EXPECT_EQ(t.alloc_bytes, 96u);
    // The old block is gone, but no release was seen: not a free, an inconsistency.
    EXPECT_EQ(t.frees, 0u);
    EXPECT_EQ(t.missed_releases, 1u);
    EXPECT_EQ(t.unknown_frees, 0u);
    EXPECT_EQ(t.live_blocks, 1u);
    EXPECT_EQ(t.live_bytes, 32u);
    expect_stats(ledger.stack_stats(old_stack), 0, 0, 64, 1);
    expect_stats(ledger.stack_stats(new_stack), 32, 1, 32, 1);
    ASSERT_NE(ledger.find(0x1000), nullptr);
    EXPECT_EQ(ledger.find(0x1000)->stack, new_stack);
    EXPECT_EQ(ledger.find(0x1000)->size, 32u);
    EXPECT_EQ(ledger.top_stacks(10), std::vector<StackId>{new_stack});
}

TEST(Ledger, FreesOfUnknownBlocks) {
    Ledger ledger;
    const StackId s = stack(ledger, 0x402000);
    ledger.on_free(release(0x9000));  // allocated before tracing began
    ledger.on_alloc(alloc(0x1000, 8, s));
    ledger.on_free(release(0x1000));
    ledger.on_free(release(0x1000));  // double free
    ledger.on_free(release(0));       // free(NULL): a no-op, not an unknown block

    const LedgerTotals& t = ledger.totals();
    EXPECT_EQ(t.allocs, 1u);
    EXPECT_EQ(t.frees, 1u);
    EXPECT_EQ(t.unknown_frees, 2u);
    EXPECT_EQ(t.live_blocks, 0u);
    EXPECT_EQ(t.live_bytes, 0u);
    expect_stats(ledger.stack_stats(s), 0, 0, 8, 1);
}

TEST(Ledger, NullAllocationIsIgnored) {
    Ledger ledger;
    ledger.on_alloc(alloc(0, 100, stack(ledger, 0x402000)));
    EXPECT_EQ(ledger.totals().allocs, 0u);
    EXPECT_EQ(ledger.totals().alloc_bytes, 0u);
    EXPECT_EQ(ledger.live().size(), 0u);
}

TEST(Ledger, ZeroSizedBlocksAreLive) {
    Ledger ledger;
    const StackId s = stack(ledger, 0x402000);
    ledger.on_alloc(alloc(0x1000, 0, s));  // malloc(0) returns a unique, freeable pointer
    EXPECT_EQ(ledger.totals().live_blocks, 1u);
    EXPECT_EQ(ledger.top_stacks(5), std::vector<StackId>{s});
    ledger.on_free(release(0x1000));
    EXPECT_EQ(ledger.totals().frees, 1u);
    EXPECT_EQ(ledger.totals().unknown_frees, 0u);
}

TEST(Ledger, TimeIsMillisecondsSinceTheFirstEvent) {
    Ledger ledger;
    EXPECT_EQ(ledger.epoch_ns(), 0u);
    const StackId s = stack(ledger, 0x402000);
    ledger.on_free(release(0x9000, kT0));  // any first event sets the epoch
    EXPECT_EQ(ledger.epoch_ns(), kT0);
    ledger.on_alloc(alloc(0x1000, 1, s, kT0 + 1'500'999'999));
    ledger.on_alloc(alloc(0x2000, 1, s, kT0 - 1'000'000));  // reached the ledger late
    ledger.on_alloc(alloc(0x3000, 1, s, kT0 + 60ULL * 86'400 * 1'000'000'000));  // 60 days
    EXPECT_EQ(ledger.find(0x1000)->time_ms, 1500u);
    EXPECT_EQ(ledger.find(0x2000)->time_ms, 0u);
    EXPECT_EQ(ledger.find(0x3000)->time_ms, std::numeric_limits<std::uint32_t>::max());
    EXPECT_EQ(ledger.epoch_ns(), kT0);
}

TEST(Ledger, StackStatsOfUnusedOrUnknownIdsAreZero) {
    Ledger ledger;
    const StackId used = stack(ledger, 0x402000);
    const StackId unused = stack(ledger, 0x403000);
    ledger.on_alloc(alloc(0x1000, 10, used));
    expect_stats(ledger.stack_stats(unused), 0, 0, 0, 0);
    expect_stats(ledger.stack_stats(0), 0, 0, 0, 0);
    expect_stats(ledger.stack_stats(1'000'000), 0, 0, 0, 0);
}

TEST(Ledger, TopStacksOrderAndTies) {
    Ledger ledger;
    std::vector<StackId> s;
    for (RemoteAddr pc = 0; pc < 7; ++pc) s.push_back(stack(ledger, 0x500000 + pc * 0x10));
    RemoteAddr next = 0x10000;
    const auto allocate = [&](StackId id, std::uint64_t size) {
        ledger.on_alloc(alloc(next, size, id));
        next += 0x100;
        return next - 0x100;
    };
    allocate(s[0], 100);                   // 100 bytes, 1 block
    allocate(s[1], 50);                    // 100 bytes, 2 blocks: before s[0]
    allocate(s[1], 50);
    allocate(s[2], 300);                   // 300 bytes: first
    allocate(s[3], 100);                   // same as s[0]: after it, by id
    allocate(s[4], 10);                    // 10 bytes: last
    const RemoteAddr gone = allocate(s[5], 1000);  // freed: not listed at all
    ledger.on_free(release(gone));
    // s[6] never allocates.

    EXPECT_EQ(ledger.top_stacks(100), (std::vector<StackId>{s[2], s[1], s[0], s[3], s[4]}));
    EXPECT_EQ(ledger.top_stacks(3), (std::vector<StackId>{s[2], s[1], s[0]}));
    EXPECT_EQ(ledger.top_stacks(1), (std::vector<StackId>{s[2]}));
    EXPECT_TRUE(ledger.top_stacks(0).empty());
    EXPECT_EQ(ledger.stack_stats(s[5]).total_bytes, 1000u);
}

TEST(Ledger, TopStacksAmongManyMatchesAFullSort) {
    Ledger ledger;
    std::mt19937_64 rng(7);
    constexpr int kStacks = 100'000;
    RemoteAddr next = 0x10000;
    for (int i = 0; i < kStacks; ++i) {
        const StackId id = stack(ledger, 0x500000 + static_cast<RemoteAddr>(i) * 0x10);
        const int blocks = static_cast<int>(rng() % 3);  // some stacks end up with none
        for (int b = 0; b < blocks; ++b) {
            ledger.on_alloc(alloc(next, 16 * (rng() % 64), id));  // small sizes: many ties
            next += 0x40;
        }
    }
    std::vector<StackId> all(ledger.stacks().size());
    std::iota(all.begin(), all.end(), StackId{0});
    std::erase_if(all, [&](StackId id) { return ledger.stack_stats(id).live_blocks == 0; });
    std::sort(all.begin(), all.end(), [&](StackId a, StackId b) {
        const StackStats& x = ledger.stack_stats(a);
        const StackStats& y = ledger.stack_stats(b);
        return std::tuple(y.live_bytes, y.live_blocks, a) < std::tuple(x.live_bytes, x.live_blocks, b);
    });
    EXPECT_EQ(ledger.top_stacks(10), std::vector<StackId>(all.begin(), all.begin() + 10));
    EXPECT_EQ(ledger.top_stacks(1'000'000), all);
}

TEST(Ledger, RandomEventsKeepTotalsConsistent) {
    Ledger ledger;
    std::mt19937_64 rng(11);
    std::vector<StackId> stacks;
    for (RemoteAddr pc = 0; pc < 50; ++pc) stacks.push_back(stack(ledger, 0x600000 + pc * 0x10));
    std::uint64_t allocs = 0, frees_sent = 0;
    for (int i = 0; i < 200'000; ++i) {
        const RemoteAddr addr = 0x10000 + (rng() % 5000) * 0x20;  // reuse, including of live addrs
        if (rng() % 2) {
            ledger.on_alloc(alloc(addr, rng() % 4096, stacks[rng() % stacks.size()]));
            ++allocs;
        } else {
            ledger.on_free(release(addr));
            ++frees_sent;
        }
    }
    const LedgerTotals& t = ledger.totals();
    EXPECT_EQ(t.allocs, allocs);
    // Every alloc is live, freed, or replaced (a missed release); every free is known or unknown.
    EXPECT_EQ(t.allocs, t.live_blocks + t.frees + t.missed_releases);
    EXPECT_EQ(t.frees, frees_sent - t.unknown_frees);

    std::uint64_t live_bytes = 0, live_blocks = 0, total_bytes = 0, total_blocks = 0;
    for (StackId id : stacks) {
        live_bytes += ledger.stack_stats(id).live_bytes;
        live_blocks += ledger.stack_stats(id).live_blocks;
        total_bytes += ledger.stack_stats(id).total_bytes;
        total_blocks += ledger.stack_stats(id).total_blocks;
    }
    EXPECT_EQ(live_bytes, t.live_bytes);
    EXPECT_EQ(live_blocks, t.live_blocks);
    EXPECT_EQ(total_bytes, t.alloc_bytes);
    EXPECT_EQ(total_blocks, t.allocs);
    std::uint64_t table_bytes = 0;
    ledger.live().for_each([&](const LiveBlock& b) { table_bytes += b.size; });
    EXPECT_EQ(table_bytes, t.live_bytes);
    EXPECT_EQ(ledger.live().size(), t.live_blocks);
}

}  // namespace
}  // namespace leakcheck
