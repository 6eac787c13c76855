// MappingLedger: exact ranges and per-stack numbers after page rounding, munmap splits and
// trims, unmaps spanning several mappings and gaps, MAP_FIXED replacement, shmdt, unknown
// unmaps; a randomized comparison with a page-by-page model; the cost at 100k mappings.
#include "leakcheck/mapping_ledger.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <tuple>
#include <vector>

namespace leakcheck {
namespace {

constexpr std::uint64_t kPage = MappingLedger::kPageSize;
std::uint64_t now = 1'000'000'000;

void map(MappingLedger& ledger, RemoteAddr addr, std::uint64_t size, StackId stack,
         MapKind kind = MapKind::kMmap) {
    ledger.on_map(MapEvent{addr, size, stack, 7, kind, now += 1000});
}

void unmap(MappingLedger& ledger, RemoteAddr addr, std::uint64_t size) {
    ledger.on_unmap(UnmapEvent{addr, size, 7, now += 1000});
}

void shmdt(MappingLedger& ledger, RemoteAddr addr) { unmap(ledger, addr, 0); }

struct Range {
    RemoteAddr start;
    RemoteAddr end;
    StackId stack;
    bool operator==(const Range&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Range& r) {
    return os << std::hex << "[0x" << r.start << ", 0x" << r.end << ")" << std::dec << " stack " << r.stack;
}

std::vector<Range> ranges(const MappingLedger& ledger) {
    std::vector<Range> out;
    ledger.for_each([&](const Mapping& m) { out.push_back({m.start, m.end, m.stack}); });
    return out;
}

// live_mappings, live_bytes; then maps, map_bytes, unmaps.
void expect_totals(const MappingLedger& ledger, std::uint64_t live_mappings, std::uint64_t live_bytes,
                   std::uint64_t maps, std::uint64_t map_bytes, std::uint64_t unmaps) {
    const MappingTotals& t = ledger.totals();
    EXPECT_EQ(t.live_mappings, live_mappings);
    EXPECT_EQ(t.live_bytes, live_bytes);
    EXPECT_EQ(t.maps, maps);
    EXPECT_EQ(t.map_bytes, map_bytes);
    EXPECT_EQ(t.unmaps, unmaps);
}

TEST(MappingLedger, PageRounding) {
    MappingLedger ledger;
    map(ledger, 0x10000, 100, 1);
    map(ledger, 0x20000, kPage, 1);
    map(ledger, 0x30000, kPage + 1, 2);
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x10000, 0x11000, 1}, {0x20000, 0x21000, 1}, {0x30000, 0x32000, 2}}));
    expect_totals(ledger, 3, 4 * kPage, 3, 100 + kPage + kPage + 1, 0);
    EXPECT_EQ(ledger.stack_stats(1).live_bytes, 2 * kPage);
    EXPECT_EQ(ledger.stack_stats(1).total_bytes, 100 + kPage);
    EXPECT_EQ(ledger.find(0x10fff)->start, 0x10000u);
    EXPECT_EQ(ledger.find(0x10fff)->asked, 100u);
    EXPECT_EQ(ledger.find(0x11000), nullptr);

    // munmap rounds its length up as well: one byte releases the page.
    unmap(ledger, 0x31000, 1);
    EXPECT_EQ(ranges(ledger).back(), (Range{0x30000, 0x31000, 2}));
    expect_totals(ledger, 3, 3 * kPage, 3, 100 + kPage + kPage + 1, 1);

    // A zero-length map (the kernel refuses it) records nothing.
    map(ledger, 0x50000, 0, 3);
    expect_totals(ledger, 3, 3 * kPage, 3, 100 + kPage + kPage + 1, 1);
}

TEST(MappingLedger, MunmapInTheMiddleSplits) {
    MappingLedger ledger;
    map(ledger, 0x10000, 4 * kPage, 1);
    unmap(ledger, 0x11000, kPage);
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x10000, 0x11000, 1}, {0x12000, 0x14000, 1}}));
    expect_totals(ledger, 2, 3 * kPage, 1, 4 * kPage, 1);
    const MappingStackStats& s = ledger.stack_stats(1);
    EXPECT_EQ(s.live_mappings, 2u);
    EXPECT_EQ(s.live_bytes, 3 * kPage);
    EXPECT_EQ(s.total_mappings, 1u);
    EXPECT_EQ(s.total_bytes, 4 * kPage);
    EXPECT_EQ(ledger.find(0x11800), nullptr);
    // Both pieces keep what the map call recorded.
    const Mapping* tail = ledger.find(0x13fff);
    ASSERT_NE(tail, nullptr);
    EXPECT_EQ(tail->start, 0x12000u);
    EXPECT_EQ(tail->asked, 4 * kPage);
    EXPECT_EQ(tail->serial, ledger.find(0x10000)->serial);
    EXPECT_EQ(tail->tid, 7);

    // Splitting a piece again: three pieces from one call, each counted.
    map(ledger, 0x20000, 5 * kPage, 2);  // [20000, 25000)
    unmap(ledger, 0x21000, kPage);
    unmap(ledger, 0x23000, kPage);
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x10000, 0x11000, 1},
                                                  {0x12000, 0x14000, 1},
                                                  {0x20000, 0x21000, 2},
                                                  {0x22000, 0x23000, 2},
                                                  {0x24000, 0x25000, 2}}));
    EXPECT_EQ(ledger.stack_stats(2).live_mappings, 3u);
    EXPECT_EQ(ledger.stack_stats(2).live_bytes, 3 * kPage);
    expect_totals(ledger, 5, 6 * kPage, 2, 9 * kPage, 3);

    unmap(ledger, 0x20000, 0x3000);  // the first piece, the hole after it and the second piece
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x10000, 0x11000, 1}, {0x12000, 0x14000, 1}, {0x24000, 0x25000, 2}}));
    expect_totals(ledger, 3, 4 * kPage, 2, 9 * kPage, 4);
    EXPECT_EQ(ledger.stack_stats(2).live_mappings, 1u);
}

TEST(MappingLedger, TrimEitherEnd) {
    MappingLedger ledger;
    map(ledger, 0x10000, 4 * kPage, 1);
    unmap(ledger, 0x10000, kPage);  // head
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x11000, 0x14000, 1}}));
    ASSERT_NE(ledger.find(0x11000), nullptr);
    EXPECT_EQ(ledger.find(0x11000)->start, 0x11000u);
    EXPECT_EQ(ledger.find(0x10000), nullptr);

    unmap(ledger, 0x13000, kPage);  // tail
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x11000, 0x13000, 1}}));
    expect_totals(ledger, 1, 2 * kPage, 1, 4 * kPage, 2);

    // Overhanging either end into unknown space: only the known part goes.
    unmap(ledger, 0x0f000, 3 * kPage);
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x12000, 0x13000, 1}}));
    unmap(ledger, 0x12000, 100 * kPage);
    EXPECT_TRUE(ranges(ledger).empty());
    expect_totals(ledger, 0, 0, 1, 4 * kPage, 4);
    EXPECT_EQ(ledger.stack_stats(1).live_mappings, 0u);
    EXPECT_EQ(ledger.stack_stats(1).live_bytes, 0u);
}

TEST(MappingLedger, MunmapAcrossTwoMappingsAndAGap) {
    MappingLedger ledger;
    map(ledger, 0x10000, 2 * kPage, 1);  // [10000, 12000)
    map(ledger, 0x14000, 2 * kPage, 2);  // [14000, 16000)
    map(ledger, 0x16000, kPage, 3);      // adjacent: [16000, 17000)
    map(ledger, 0x18000, kPage, 1);      // [18000, 19000)
    unmap(ledger, 0x11000, 0x4000);      // [11000, 15000): tail of 1, gap, head of 2
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x10000, 0x11000, 1},
                                                  {0x15000, 0x16000, 2},
                                                  {0x16000, 0x17000, 3},
                                                  {0x18000, 0x19000, 1}}));
    expect_totals(ledger, 4, 4 * kPage, 4, 6 * kPage, 1);
    EXPECT_EQ(ledger.stack_stats(1).live_bytes, 2 * kPage);
    EXPECT_EQ(ledger.stack_stats(2).live_bytes, kPage);

    // Whole mappings inside, cut ends, gaps: one unmap.
    unmap(ledger, 0x10000, 0x8800);
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{}));
    expect_totals(ledger, 0, 0, 4, 6 * kPage, 2);
}

TEST(MappingLedger, UnknownUnmapsIgnored) {
    MappingLedger ledger;
    map(ledger, 0x10000, 2 * kPage, 1);
    map(ledger, 0x20000, kPage, 2, MapKind::kSharedMemory);
    const std::vector<Range> before = ranges(ledger);

    unmap(ledger, 0x30000, 16 * kPage);       // nothing known there
    unmap(ledger, 0x12000, kPage);            // just past the first mapping
    unmap(ledger, 0x10800, kPage);            // unaligned: the kernel refuses it
    shmdt(ledger, 0x40000);                   // no segment attached there
    shmdt(ledger, 0x10000);                   // an mmap, not a segment: shmdt fails
    unmap(ledger, 0x0, 0x10000);              // up to, not into, the first mapping
    EXPECT_EQ(ranges(ledger), before);
    expect_totals(ledger, 2, 3 * kPage, 2, 3 * kPage, 0);
}

TEST(MappingLedger, MapFixedReplacesWhatWasThere) {
    MappingLedger ledger;
    map(ledger, 0x10000, 4 * kPage, 1);
    map(ledger, 0x11000, kPage, 2);  // MAP_FIXED into the middle
    EXPECT_EQ(ranges(ledger),
              (std::vector<Range>{{0x10000, 0x11000, 1}, {0x11000, 0x12000, 2}, {0x12000, 0x14000, 1}}));
    // Replacement is not an unmap; the split pieces of 1 count as two mappings.
    expect_totals(ledger, 3, 4 * kPage, 2, 5 * kPage, 0);
    EXPECT_EQ(ledger.stack_stats(1).live_mappings, 2u);
    EXPECT_EQ(ledger.stack_stats(1).live_bytes, 3 * kPage);

    // Over the same range exactly, and over several mappings and their ends.
    map(ledger, 0x11000, kPage, 3);
    EXPECT_EQ(ledger.stack_stats(2).live_mappings, 0u);
    map(ledger, 0x0f000, 0x4000, 4);  // [f000, 13000): all of 1's head piece, 3, half of 1's tail
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x0f000, 0x13000, 4}, {0x13000, 0x14000, 1}}));
    expect_totals(ledger, 2, 5 * kPage, 4, 10 * kPage, 0);
    EXPECT_EQ(ledger.stack_stats(1).live_mappings, 1u);
    EXPECT_EQ(ledger.stack_stats(1).live_bytes, kPage);
    EXPECT_EQ(ledger.stack_stats(3).live_mappings, 0u);
    EXPECT_EQ(ledger.stack_stats(4).live_bytes, 4 * kPage);
}

TEST(MappingLedger, ShmdtByAddress) {
    MappingLedger ledger;
    map(ledger, 0x20000, 10000, 5, MapKind::kSharedMemory);  // 3 pages
    map(ledger, 0x30000, kPage, 5, MapKind::kSharedMemory);
    EXPECT_EQ(ledger.find(0x20000)->kind, MapKind::kSharedMemory);
    expect_totals(ledger, 2, 4 * kPage, 2, 10000 + kPage, 0);

    shmdt(ledger, 0x20001);  // not where a segment was attached
    shmdt(ledger, 0x21000);  // inside it, but not its address
    expect_totals(ledger, 2, 4 * kPage, 2, 10000 + kPage, 0);

    shmdt(ledger, 0x20000);
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x30000, 0x31000, 5}}));
    expect_totals(ledger, 1, kPage, 2, 10000 + kPage, 1);
    shmdt(ledger, 0x20000);  // twice: the second fails
    expect_totals(ledger, 1, kPage, 2, 10000 + kPage, 1);
}

TEST(MappingLedger, ShmdtDetachesEveryPieceOfTheSegment) {
    MappingLedger ledger;
    map(ledger, 0x20000, 5 * kPage, 5, MapKind::kSharedMemory);  // [20000, 25000)
    unmap(ledger, 0x20000, kPage);                                // its first page
    unmap(ledger, 0x22000, kPage);                                // and a middle one
    map(ledger, 0x20000, kPage, 6);                               // an mmap where it started
    map(ledger, 0x26000, kPage, 5, MapKind::kSharedMemory);       // another segment after it
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x20000, 0x21000, 6},
                                                  {0x21000, 0x22000, 5},
                                                  {0x23000, 0x25000, 5},
                                                  {0x26000, 0x27000, 5}}));
    EXPECT_EQ(ledger.stack_stats(5).live_mappings, 3u);

    // As the kernel does: the segment's remaining pieces go, the mmap and the other segment stay.
    shmdt(ledger, 0x20000);
    EXPECT_EQ(ranges(ledger), (std::vector<Range>{{0x20000, 0x21000, 6}, {0x26000, 0x27000, 5}}));
    expect_totals(ledger, 2, 2 * kPage, 3, 7 * kPage, 3);
    EXPECT_EQ(ledger.stack_stats(5).live_mappings, 1u);
    EXPECT_EQ(ledger.stack_stats(5).live_bytes, kPage);
}

TEST(MappingLedger, PerStackTotalsAfterSplits) {
    MappingLedger ledger;
    map(ledger, 0x100000, 8 * kPage, 1);
    map(ledger, 0x200000, 8 * kPage, 1);
    map(ledger, 0x300000, 3 * kPage + 5, 2);
    unmap(ledger, 0x101000, kPage);
    unmap(ledger, 0x103000, kPage);
    unmap(ledger, 0x105000, kPage);  // 0x100000 now in 4 pieces: 1 + 1 + 1 + 2 pages
    unmap(ledger, 0x207000, kPage);  // 0x200000 trimmed to 7 pages
    unmap(ledger, 0x301000, kPage);  // 0x300000 in 2 pieces: 1 + 2 pages

    const MappingStackStats& s1 = ledger.stack_stats(1);
    EXPECT_EQ(s1.live_mappings, 5u);
    EXPECT_EQ(s1.live_bytes, 12 * kPage);
    EXPECT_EQ(s1.total_mappings, 2u);
    EXPECT_EQ(s1.total_bytes, 16 * kPage);
    const MappingStackStats& s2 = ledger.stack_stats(2);
    EXPECT_EQ(s2.live_mappings, 2u);
    EXPECT_EQ(s2.live_bytes, 3 * kPage);
    EXPECT_EQ(s2.total_bytes, 3 * kPage + 5);
    expect_totals(ledger, 7, 15 * kPage, 3, 19 * kPage + 5, 5);

    // An id never seen has zeros.
    EXPECT_EQ(ledger.stack_stats(12345).live_mappings, 0u);
    EXPECT_EQ(ledger.stack_stats(12345).total_bytes, 0u);
}

TEST(MappingLedger, TopStacksOrder) {
    MappingLedger ledger;
    map(ledger, 0x10000, 2 * kPage, 3);   // stack 3: 2 pages in 1
    map(ledger, 0x20000, kPage, 4);       // stack 4: 2 pages in 2
    map(ledger, 0x30000, kPage, 4);
    map(ledger, 0x40000, kPage, 2);       // stack 2: 2 pages in 2, lower id than 4
    map(ledger, 0x50000, kPage, 2);
    map(ledger, 0x60000, 5 * kPage, 6);   // stack 6: 5 pages
    map(ledger, 0x70000, kPage, 0);       // not captured: 1 page
    map(ledger, 0x80000, 9 * kPage, 7);   // stack 7: all unmapped, not listed
    unmap(ledger, 0x80000, 9 * kPage);
    EXPECT_EQ(ledger.top_stacks(10), (std::vector<StackId>{6, 2, 4, 3, 0}));
    EXPECT_EQ(ledger.top_stacks(3), (std::vector<StackId>{6, 2, 4}));
    EXPECT_TRUE(ledger.top_stacks(0).empty());

    // A split keeps the bytes but raises the count, which breaks a tie on bytes.
    map(ledger, 0x90000, 3 * kPage, 8);
    map(ledger, 0xa0000, 4 * kPage, 9);
    unmap(ledger, 0xa1000, kPage);         // stack 9: 3 pages in 2 mappings, ahead of 8's 1
    unmap(ledger, 0x60000 + kPage, kPage);  // stack 6: 4 pages in 2
    EXPECT_EQ(ledger.stack_stats(9).live_mappings, 2u);
    EXPECT_EQ(ledger.top_stacks(10), (std::vector<StackId>{6, 9, 8, 2, 4, 3, 0}));
    EXPECT_EQ(ledger.top_stacks(2), (std::vector<StackId>{6, 9}));
}

// Random maps (MAP_FIXED over old ones included), munmaps and shmdts in a small window,
// checked after each one against a page-by-page model: which map call owns each page.
TEST(MappingLedger, MatchesAPageModel) {
    constexpr RemoteAddr kBase = 0x100000;
    constexpr std::size_t kPages = 256;
    std::mt19937_64 rng(12345);
    const auto pick = [&](std::uint64_t lo, std::uint64_t hi) {
        return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
    };

    MappingLedger ledger;
    std::vector<std::uint64_t> owner(kPages, 0);  // serial of the map call, 0 = unmapped
    std::map<std::uint64_t, StackId> stack_of;
    std::map<RemoteAddr, std::uint64_t> attached;  // shmat address -> serial
    std::uint64_t serial = 0;

    for (int step = 0; step < 20000; ++step) {
        const std::uint64_t first = pick(0, kPages - 1);
        const std::uint64_t pages = pick(1, 12);
        const RemoteAddr addr = kBase + first * kPage;
        const std::uint64_t size = pages * kPage - pick(0, kPage - 1);
        const std::uint64_t op = pick(0, 9);
        if (op < 4) {
            const StackId stack = static_cast<StackId>(pick(0, 5));
            const MapKind kind = op == 0 ? MapKind::kSharedMemory : MapKind::kMmap;
            map(ledger, addr, size, stack, kind);
            stack_of[++serial] = stack;
            for (std::uint64_t p = first; p < std::min<std::uint64_t>(first + pages, kPages); ++p) owner[p] = serial;
            // The window's end stands for the end of the address space: keep maps inside it.
            if (first + pages > kPages) unmap(ledger, kBase + kPages * kPage, pages * kPage);
            if (kind == MapKind::kSharedMemory) attached[addr] = serial;
        } else if (op < 9) {
            unmap(ledger, addr, size);
            for (std::uint64_t p = first; p < std::min<std::uint64_t>(first + pages, kPages); ++p) owner[p] = 0;
        } else {
            const RemoteAddr at = attached.empty() || pick(0, 1) == 0
                                      ? addr
                                      : std::next(attached.begin(), static_cast<long>(pick(0, attached.size() - 1)))->first;
            shmdt(ledger, at);
            if (const auto it = attached.find(at); it != attached.end()) {
                for (std::uint64_t& o : owner)
                    if (o == it->second) o = 0;
                attached.erase(it);
            }
        }

        // Model: per stack, pages and runs of pages of one map call (the pieces).
        std::map<StackId, std::pair<std::uint64_t, std::uint64_t>> expected;  // bytes, mappings
        for (std::size_t p = 0; p < kPages; ++p) {
            if (owner[p] == 0) continue;
            auto& e = expected[stack_of[owner[p]]];
            e.first += kPage;
            if (p == 0 || owner[p - 1] != owner[p]) e.second += 1;
        }
        std::uint64_t bytes = 0, count = 0;
        for (StackId id = 0; id <= 5; ++id) {
            const MappingStackStats& s = ledger.stack_stats(id);
            const auto e = expected.count(id) ? expected[id] : std::pair<std::uint64_t, std::uint64_t>{0, 0};
            ASSERT_EQ(s.live_bytes, e.first) << "step " << step << " stack " << id;
            ASSERT_EQ(s.live_mappings, e.second) << "step " << step << " stack " << id;
            bytes += e.first;
            count += e.second;
        }
        ASSERT_EQ(ledger.totals().live_bytes, bytes);
        ASSERT_EQ(ledger.totals().live_mappings, count);
        // Spot-check which call owns one page.
        const std::uint64_t p = pick(0, kPages - 1);
        const Mapping* m = ledger.find(kBase + p * kPage + 5);
        ASSERT_EQ(m == nullptr, owner[p] == 0) << "step " << step;
        if (m != nullptr) {
            ASSERT_EQ(m->serial, owner[p]) << "step " << step;
        }
    }
    RemoteAddr last_end = 0;
    ledger.for_each([&](const Mapping& m) {
        EXPECT_LT(m.start, m.end);
        EXPECT_LE(last_end, m.start);
        last_end = m.end;
    });
}

TEST(MappingLedger, HundredThousandMappingsAndUnmapsInUnderASecond) {
    constexpr std::uint64_t kCount = 100'000;
    constexpr RemoteAddr kBase = 0x7f0000000000;
    std::mt19937_64 rng(7);
    const auto start = std::chrono::steady_clock::now();

    MappingLedger ledger;
    // One mapping every 8 pages, 1 to 4 pages long, from 1000 stacks.
    for (std::uint64_t i = 0; i < kCount; ++i)
        map(ledger, kBase + i * 8 * kPage, (1 + rng() % 4) * kPage, static_cast<StackId>(1 + i % 1000));
    ASSERT_EQ(ledger.totals().live_mappings, kCount);

    // Random page-aligned ranges of 1 to 16 pages: they split, trim, span gaps or hit nothing.
    for (std::uint64_t i = 0; i < kCount; ++i)
        unmap(ledger, kBase + (rng() % (kCount * 8)) * kPage, (1 + rng() % 16) * kPage);
    const auto top = ledger.top_stacks(10);
    const auto elapsed = std::chrono::steady_clock::now() - start;

    std::uint64_t bytes = 0, count = 0;
    ledger.for_each([&](const Mapping& m) {
        bytes += m.length();
        ++count;
    });
    EXPECT_EQ(ledger.totals().live_bytes, bytes);
    EXPECT_EQ(ledger.totals().live_mappings, count);
    EXPECT_EQ(top.size(), 10u);
    EXPECT_GT(ledger.totals().unmaps, kCount / 2);
#if !defined(__SANITIZE_ADDRESS__)
    EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 1000);
#endif
}

}  // namespace
}  // namespace leakcheck
