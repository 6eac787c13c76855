// StackTable: identity of interned stacks (same PCs, same id; any other sequence, another id),
// checked directly and against an std::unordered_map oracle over a million interns.
#include "leakcheck/stack_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>
#include <unordered_map>
#include <vector>

namespace leakcheck {
namespace {

using Pcs = std::vector<RemoteAddr>;

struct PcsHash {
    std::size_t operator()(const Pcs& pcs) const noexcept {
        std::size_t h = pcs.size();
        for (RemoteAddr pc : pcs) h = (h ^ pc) * 0x100000001b3ULL;
        return h;
    }
};

std::vector<RemoteAddr> as_vector(std::span<const RemoteAddr> pcs) { return {pcs.begin(), pcs.end()}; }

TEST(StackTable, EmptyStackIsIdZero) {
    StackTable table;
    EXPECT_EQ(table.size(), 1u);
    EXPECT_EQ(table.intern({}), 0u);
    EXPECT_TRUE(table.pcs(0).empty());
    EXPECT_EQ(table.size(), 1u);
    EXPECT_TRUE(table.pcs(12345).empty());  // ids never handed out read as empty too
}

TEST(StackTable, SamePcsSameIdOtherSequencesOtherIds) {
    StackTable table;
    const Pcs abc{0x401000, 0x402000, 0x403000};
    const Pcs cba{0x403000, 0x402000, 0x401000};
    const Pcs ab{0x401000, 0x402000};
    const Pcs abcd{0x401000, 0x402000, 0x403000, 0x404000};

    const StackId id = table.intern(abc);
    EXPECT_EQ(id, 1u);
    EXPECT_EQ(table.intern(Pcs(abc)), id);  // a different buffer with the same contents
    EXPECT_EQ(as_vector(table.pcs(id)), abc);

    const StackId reversed = table.intern(cba);
    const StackId prefix = table.intern(ab);
    const StackId longer = table.intern(abcd);
    EXPECT_NE(reversed, id);
    EXPECT_NE(prefix, id);
    EXPECT_NE(longer, id);
    EXPECT_NE(prefix, longer);
    EXPECT_EQ(table.size(), 5u);
    EXPECT_EQ(as_vector(table.pcs(reversed)), cba);
    EXPECT_EQ(as_vector(table.pcs(prefix)), ab);
    EXPECT_EQ(as_vector(table.pcs(longer)), abcd);
    EXPECT_EQ(table.intern(cba), reversed);
    EXPECT_EQ(table.intern(ab), prefix);
}

TEST(StackTable, InterningASliceOfItsOwnStorage) {
    StackTable table;
    Pcs deep;
    for (RemoteAddr i = 0; i < 64; ++i) deep.push_back(0x7f0000001000 + i * 0x10);
    const StackId id = table.intern(deep);
    // The tail is new, and is read from the table's own array while that array grows.
    for (std::size_t skip = 1; skip < deep.size(); ++skip) {
        const StackId tail = table.intern(table.pcs(id).subspan(skip));
        EXPECT_EQ(as_vector(table.pcs(tail)), Pcs(deep.begin() + static_cast<std::ptrdiff_t>(skip), deep.end()));
    }
    EXPECT_EQ(table.intern(table.pcs(id)), id);
    EXPECT_EQ(table.size(), 1u + deep.size());
}

TEST(StackTable, MillionInternsAgainstOracle) {
    std::mt19937_64 rng(42);
    // A pool where stacks share frames, some are permutations or prefixes of others and some
    // repeat by chance (short ones over a small alphabet), interned in random order.
    std::vector<Pcs> pool;
    std::uniform_int_distribution<int> length(1, 16);
    std::uniform_int_distribution<RemoteAddr> frame(0, 511);
    for (int i = 0; i < 100'000; ++i) {
        Pcs pcs(static_cast<std::size_t>(length(rng)));
        for (RemoteAddr& pc : pcs) pc = 0x555555554000 + frame(rng) * 0x24;
        pool.push_back(pcs);
        if (i % 10 == 0 && pcs.size() > 1) {
            std::shuffle(pcs.begin(), pcs.end(), rng);
            pool.push_back(pcs);
            pcs.pop_back();
            pool.push_back(pcs);
        }
    }

    StackTable table;
    std::unordered_map<Pcs, StackId, PcsHash> oracle;
    std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
    std::size_t mismatches = 0;
    for (int i = 0; i < 1'000'000; ++i) {
        const Pcs& pcs = pool[pick(rng)];
        const StackId id = table.intern(pcs);
        const auto [it, added] = oracle.try_emplace(pcs, id);
        if (added) {
            // A new sequence gets the next id.
            if (id != oracle.size()) ++mismatches;
        } else if (it->second != id) {
            ++mismatches;
        }
    }
    EXPECT_EQ(mismatches, 0u);
    ASSERT_EQ(table.size(), oracle.size() + 1);
    for (const auto& [pcs, id] : oracle) {
        if (as_vector(table.pcs(id)) != pcs) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0u);
}

TEST(StackTable, MillionDistinctStacksKeepTheirIds) {
    StackTable table;
    const auto stack_of = [](std::uint64_t i) {
        // Neighbouring stacks differ only in their innermost frame, as in a loop over callers.
        return std::array<RemoteAddr, 4>{0x401000 + i * 0x10, 0x402000, 0x403000, 0x404000};
    };
    constexpr std::uint64_t kStacks = 1'000'000;
    for (std::uint64_t i = 0; i < kStacks; ++i) ASSERT_EQ(table.intern(stack_of(i)), i + 1);
    std::size_t mismatches = 0;
    for (std::uint64_t i = 0; i < kStacks; ++i)
        if (table.intern(stack_of(i)) != i + 1) ++mismatches;
    EXPECT_EQ(mismatches, 0u);
    EXPECT_EQ(table.size(), kStacks + 1);
    // 4 PCs + offset + hash + index slots: about 60 bytes a stack, well under 100.
    EXPECT_LT(table.memory_bytes() / kStacks, 100u);
}

}  // namespace
}  // namespace leakcheck
