// LiveBlockTable: insert/replace/erase semantics, a million randomized operations against an
// std::unordered_map oracle, and the memory budget of at most 64 bytes per live block.
#include "leakcheck/live_block_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <unordered_map>
#include <vector>

namespace leakcheck {
namespace {

LiveBlock block(RemoteAddr addr, std::uint64_t size, StackId stack = 1) {
    return LiveBlock{addr, size, stack, 100, 7, AllocKind::kMalloc};
}

TEST(LiveBlockTable, EmptyTable) {
    const LiveBlockTable table;
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(table.find(0x1000), nullptr);
    EXPECT_EQ(table.memory_bytes(), 0u);
    LiveBlockTable mutable_table;
    EXPECT_FALSE(mutable_table.erase(0x1000).has_value());
}

TEST(LiveBlockTable, InsertFindReplaceErase) {
    LiveBlockTable table;
    EXPECT_FALSE(table.insert(block(0x1000, 16)).has_value());
    EXPECT_FALSE(table.insert(block(0x2000, 32)).has_value());
    ASSERT_NE(table.find(0x1000), nullptr);
    EXPECT_EQ(table.find(0x1000)->size, 16u);
    EXPECT_EQ(table.find(0x1000)->tid, 100);
    EXPECT_EQ(table.find(0x1000)->time_ms, 7u);
    EXPECT_EQ(table.size(), 2u);

    const std::optional<LiveBlock> old = table.insert(block(0x1000, 48, 9));
    ASSERT_TRUE(old.has_value());
    EXPECT_EQ(old->size, 16u);
    EXPECT_EQ(old->stack, 1u);
    EXPECT_EQ(table.find(0x1000)->size, 48u);
    EXPECT_EQ(table.find(0x1000)->stack, 9u);
    EXPECT_EQ(table.size(), 2u);

    const std::optional<LiveBlock> gone = table.erase(0x1000);
    ASSERT_TRUE(gone.has_value());
    EXPECT_EQ(gone->size, 48u);
    EXPECT_EQ(table.find(0x1000), nullptr);
    EXPECT_FALSE(table.erase(0x1000).has_value());
    EXPECT_EQ(table.size(), 1u);
    EXPECT_EQ(table.find(0x2000)->size, 32u);
}

TEST(LiveBlockTable, NullAddressIsNeverStored) {
    LiveBlockTable table;
    EXPECT_FALSE(table.insert(block(0, 16)).has_value());
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(table.find(0), nullptr);
    EXPECT_FALSE(table.erase(0).has_value());
}

TEST(LiveBlockTable, ForEachVisitsEveryBlockOnce) {
    LiveBlockTable table;
    for (RemoteAddr a = 1; a <= 1000; ++a) table.insert(block(a * 16, a));
    for (RemoteAddr a = 1; a <= 1000; a += 2) table.erase(a * 16);
    std::uint64_t count = 0;
    std::uint64_t sum = 0;
    table.for_each([&](const LiveBlock& b) {
        ++count;
        sum += b.size;
        EXPECT_EQ(b.addr, b.size * 16);
    });
    EXPECT_EQ(count, 500u);
    EXPECT_EQ(sum, 500u * 501u);  // 2 + 4 + ... + 1000
}

// Random inserts (new or replacing), erases (known or not) and lookups, checked op by op.
// `span` bounds the address range, so a small one keeps the table small and churning (long
// probe runs shifted back on every erase), a large one drives it through its growth.
void run_against_oracle(std::uint64_t seed, std::uint64_t span, int ops) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<RemoteAddr> slot(1, span);
    std::uniform_int_distribution<int> action(0, 99);
    // Heap-like: 16-aligned, clustered near one base.
    const auto addr_of = [](RemoteAddr n) { return 0x5555'5555'0000ULL + n * 16; };

    LiveBlockTable table;
    std::unordered_map<RemoteAddr, std::uint64_t> oracle;  // addr -> size
    std::size_t mismatches = 0;
    for (int i = 0; i < ops; ++i) {
        const RemoteAddr addr = addr_of(slot(rng));
        const int a = action(rng);
        if (a < 55) {
            const std::uint64_t size = rng() & 0xffff;
            const std::optional<LiveBlock> old = table.insert(block(addr, size));
            const auto it = oracle.find(addr);
            if (old.has_value() != (it != oracle.end())) ++mismatches;
            if (old && old->size != it->second) ++mismatches;
            oracle[addr] = size;
        } else if (a < 95) {
            const std::optional<LiveBlock> old = table.erase(addr);
            const auto it = oracle.find(addr);
            if (old.has_value() != (it != oracle.end())) ++mismatches;
            if (old) {
                if (old->size != it->second || old->addr != addr) ++mismatches;
                oracle.erase(it);
            }
        } else {
            const LiveBlock* found = table.find(addr);
            const auto it = oracle.find(addr);
            if ((found != nullptr) != (it != oracle.end())) ++mismatches;
            if (found && found->size != it->second) ++mismatches;
        }
        if (table.size() != oracle.size()) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0u);

    std::size_t visited = 0;
    table.for_each([&](const LiveBlock& b) {
        ++visited;
        const auto it = oracle.find(b.addr);
        if (it == oracle.end() || it->second != b.size) ++mismatches;
    });
    EXPECT_EQ(visited, oracle.size());
    EXPECT_EQ(mismatches, 0u);
}

TEST(LiveBlockTable, MillionRandomOpsAgainstOracleLargeRange) {
    run_against_oracle(1, 2'000'000, 1'000'000);
}

TEST(LiveBlockTable, RandomOpsAgainstOracleSmallRange) {
    run_against_oracle(2, 200, 300'000);
}

TEST(LiveBlockTable, ScatteredAddressesAgainstOracle) {
    // Addresses anywhere in a 47-bit space: the high bits must spread as well as the low ones.
    std::mt19937_64 rng(3);
    LiveBlockTable table;
    std::unordered_map<RemoteAddr, std::uint64_t> oracle;
    std::vector<RemoteAddr> addrs;
    for (int i = 0; i < 200'000; ++i) {
        const RemoteAddr addr = ((rng() & ((1ULL << 47) - 1)) | 16) & ~RemoteAddr{15};
        const std::uint64_t size = static_cast<std::uint64_t>(i);
        table.insert(block(addr, size));
        oracle[addr] = size;
        addrs.push_back(addr);
    }
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < addrs.size(); i += 2) {
        const bool known = oracle.erase(addrs[i]) == 1;
        if (table.erase(addrs[i]).has_value() != known) ++mismatches;
    }
    for (const RemoteAddr addr : addrs) {
        const LiveBlock* found = table.find(addr);
        const auto it = oracle.find(addr);
        if ((found != nullptr) != (it != oracle.end())) ++mismatches;
        if (found && found->size != it->second) ++mismatches;
    }
    EXPECT_EQ(table.size(), oracle.size());
    EXPECT_EQ(mismatches, 0u);
}

TEST(LiveBlockTable, AtMost64BytesPerLiveBlockUpToOneMillion) {
    LiveBlockTable table;
    constexpr std::uint64_t kBlocks = 1'000'000;
    double worst = 0;  // over every size from 1000 blocks on, not just at the end
    for (std::uint64_t i = 1; i <= kBlocks; ++i) {
        table.insert(block(0x7f00'0000'0000ULL + i * 48, 32));
        if (i >= 1000) worst = std::max(worst, static_cast<double>(table.memory_bytes()) / static_cast<double>(i));
    }
    ASSERT_EQ(table.size(), kBlocks);
    EXPECT_LE(table.memory_bytes() / table.size(), 64u);
    EXPECT_LE(worst, 64.0);
}

}  // namespace
}  // namespace leakcheck
