// What one traced allocator call costs the program, in the two units that do not depend on the
// machine's load: ptrace stops and reads of its memory. (Time per event is the benchmark's
// business, under tests/bench; a timed assertion here would be flaky on a shared machine.)
//
// The budget: a malloc takes a stop at its entry and one at its return, a free one at its
// entry; the stack is read once per allocation (at the entry, from the same read that gives
// the return address), a free's return address once per free, and nothing at a return.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "leakcheck_run.hpp"
#include "traced_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;

struct Cost {
    std::uint64_t stops = 0;
    std::uint64_t entries = 0;  // stops at allocator entries (releases too, the C library's own included)
    std::uint64_t returns = 0;
    std::uint64_t reads = 0;
    std::uint64_t stacks = 0;
    std::uint64_t allocs = 0;
};

Cost cost_of(const Traced& t) {
    Cost c;
    std::smatch m;
    const std::regex stats(R"(leakcheck: stops (\d+), entries (\d+), returns (\d+), nested \d+, memory reads (\d+))");
    EXPECT_TRUE(std::regex_search(t.run.err, m, stats)) << t.run.err;
    if (m.size() == 5) {
        c.stops = std::stoull(m[1]);
        c.entries = std::stoull(m[2]);
        c.returns = std::stoull(m[3]);
        c.reads = std::stoull(m[4]);
    }
    const std::regex stacks(R"(leakcheck: stacks (\d+) )");
    EXPECT_TRUE(std::regex_search(t.run.err, m, stacks)) << t.run.err;
    if (m.size() == 2) c.stacks = std::stoull(m[1]);
    c.allocs = t.report.summary.allocs;
    return c;
}

// thread_storm at two sizes with the same threads (8 slots, 8 generations each): 1,000 and
// 2,000 operations per slot, i.e. about 16k and 32k allocator calls, a third of the frees made
// by another thread than the allocation's.
// The reachability scan at the end (its stack capture of the exiting thread, its reads) is
// no cost of an event: it is left out (--leak-check=no).
TEST(EventCost, AtMostThreeStopsAndTwoReadsPerMallocFreePair) {
    const Traced small = trace({"-v", "--leak-check=no"}, {fixture("thread_storm"), "1000", "125"}, timeout(120s));
    const Traced large = trace({"-v", "--leak-check=no"}, {fixture("thread_storm"), "2000", "250"}, timeout(120s));
    ASSERT_TRACED(small);
    ASSERT_TRACED(large);
    EXPECT_UNHARMED(small, 0);
    EXPECT_UNHARMED(large, 0);
    // The ground truth holds at any size: 8 blocks of 77 bytes outstanding.
    expect_summary(small.report, 8072, 1099634, 8064, 616, 8);
    expect_summary(large.report, 16072, 2176192, 16064, 616, 8);
    const Cost a = cost_of(small), b = cost_of(large);
    // One stack per allocation, none for anything else (no failed calls, no double frees; the
    // C library's frees at thread exit of blocks already freed need none).
    EXPECT_EQ(a.stacks, a.allocs);
    EXPECT_EQ(b.stacks, b.allocs);
    // What the larger run does more is allocator traffic only (the same threads, the same start
    // and exit), so its extra cost is the marginal cost of that traffic: a stop per entry and
    // per return, nothing else; a memory read per entry (the stack and return address of an
    // allocation, the return address of a release), none at a return.
    const std::uint64_t allocs = b.allocs - a.allocs, entries = b.entries - a.entries;
    EXPECT_EQ(b.returns - a.returns, allocs);
    EXPECT_LE(b.stops - a.stops, entries + allocs + 50) << small.run.err << large.run.err;
    EXPECT_LE(b.reads - a.reads, entries + 50) << small.run.err << large.run.err;
}
}  // namespace
}  // namespace leakcheck::e2e
