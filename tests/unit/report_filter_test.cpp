// Report options beyond the plain top-stacks list: age and size filters (exact text of the
// "Filtered:" line, boundaries, nothing hidden), the timestamped header of periodic reports, and
// growth marks and the growth-first order with a GrowthTracker.
#include <gtest/gtest.h>

#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "leakcheck/growth_tracker.hpp"
#include "leakcheck/report.hpp"

namespace leakcheck {
namespace {

std::uint64_t now = 1'000'000'000;

StackId stack(Ledger& ledger, std::vector<RemoteAddr> pcs) { return ledger.intern_stack(pcs); }

void alloc(Ledger& ledger, RemoteAddr addr, std::uint64_t size, StackId id) {
    ledger.on_alloc(AllocEvent{addr, size, id, 1, AllocKind::kMalloc, now += 1000});
}

// An allocation at an exact time, for the age filter.
void alloc_at(Ledger& ledger, RemoteAddr addr, std::uint64_t size, StackId id, std::uint64_t time_ns) {
    ledger.on_alloc(AllocEvent{addr, size, id, 1, AllocKind::kMalloc, time_ns});
}

void release(Ledger& ledger, RemoteAddr addr) { ledger.on_free(FreeEvent{addr, 0, 1, FreeKind::kFree, now += 1000}); }

std::string report(const Ledger& ledger, const ModuleMap& modules, const ReportOptions& options,
                   const GrowthTracker* growth = nullptr) {
    Symbolizer symbolizer;
    std::ostringstream out;
    write_report(out, ledger, modules, symbolizer, options, growth);
    return out.str();
}

// Blocks at known ages: now is 45 s after the first allocation.
class FilteredReport : public ::testing::Test {
protected:
    static constexpr std::uint64_t kT0 = 5'000'000'000;
    static constexpr std::uint64_t kMs = 1'000'000;

    void SetUp() override {
        const StackId s1 = stack(ledger, {0x1000});
        const StackId s2 = stack(ledger, {0x2000});
        const StackId s3 = stack(ledger, {0x3000});
        alloc_at(ledger, 0x10000, 100, s1, kT0);                 // 45 s old
        alloc_at(ledger, 0x20000, 200, s1, kT0 + 20'000 * kMs);  // 25 s
        alloc_at(ledger, 0x30000, 4000, s2, kT0 + 1'000 * kMs);  // 44 s
        alloc_at(ledger, 0x40000, 50, s2, kT0 + 40'000 * kMs);   // 5 s
        alloc_at(ledger, 0x50000, 8, s3, kT0 + 2'000 * kMs);     // 43 s
        alloc_at(ledger, 0x60000, 1, s3, kT0 + 15'000 * kMs);    // exactly 30 s: not older than
        alloc_at(ledger, 0x70000, 2, s3, kT0 + 14'999 * kMs);    // 30.001 s
        options.now_ns = kT0 + 45'000 * kMs;
    }

    Ledger ledger;
    const ModuleMap modules{};
    ReportOptions options{.top = 10, .max_frames = 32, .show_addresses = true};
    const std::string summary = "Summary: 7 allocations (4361 bytes), 0 frees, 4361 bytes in 7 blocks outstanding\n";
};

TEST_F(FilteredReport, ByAge) {
    options.min_age_ms = 30'000;
    EXPECT_EQ(report(ledger, modules, options),
              "Top 10 stacks with outstanding allocations:\n"
              "\taddr = 30000 size = 4000\n"
              "\t4000 bytes in 1 allocation from stack\n"
              "\t\t#0 0x2000\n"
              "\taddr = 10000 size = 100\n"
              "\t100 bytes in 1 allocation from stack\n"
              "\t\t#0 0x1000\n"
              "\taddr = 50000 size = 8\n"
              "\taddr = 70000 size = 2\n"
              "\t10 bytes in 2 allocations from stack\n"
              "\t\t#0 0x3000\n"
              "Filtered: showing 4 of 7 outstanding blocks (4110 of 4361 bytes): older than 30000 ms\n" +
                  summary);
}

TEST_F(FilteredReport, BySizeAndAgeTogether) {
    options.min_size = 8;
    options.max_size = 200;
    EXPECT_EQ(report(ledger, modules, options),
              "Top 10 stacks with outstanding allocations:\n"
              "\taddr = 10000 size = 100\n"
              "\taddr = 20000 size = 200\n"
              "\t300 bytes in 2 allocations from stack\n"
              "\t\t#0 0x1000\n"
              "\taddr = 40000 size = 50\n"
              "\t50 bytes in 1 allocation from stack\n"
              "\t\t#0 0x2000\n"
              "\taddr = 50000 size = 8\n"
              "\t8 bytes in 1 allocation from stack\n"
              "\t\t#0 0x3000\n"
              "Filtered: showing 4 of 7 outstanding blocks (358 of 4361 bytes): of 8 to 200 bytes\n" +
                  summary);

    options.min_age_ms = 30'000;
    options.show_addresses = false;
    EXPECT_EQ(report(ledger, modules, options),
              "Top 10 stacks with outstanding allocations:\n"
              "\t100 bytes in 1 allocation from stack\n"
              "\t\t#0 0x1000\n"
              "\t8 bytes in 1 allocation from stack\n"
              "\t\t#0 0x3000\n"
              "Filtered: showing 2 of 7 outstanding blocks (108 of 4361 bytes): older than 30000 ms, "
              "of 8 to 200 bytes\n" +
                  summary);
}

TEST_F(FilteredReport, OneSidedSizeBoundsAndTop) {
    options.show_addresses = false;
    options.top = 1;
    options.min_size = 100;
    EXPECT_EQ(report(ledger, modules, options),
              "Top 1 stacks with outstanding allocations:\n"
              "\t4000 bytes in 1 allocation from stack\n"
              "\t\t#0 0x2000\n"
              "Filtered: showing 3 of 7 outstanding blocks (4300 of 4361 bytes): of at least 100 bytes\n" +
                  summary);
    options.min_size = 0;
    options.max_size = 1;
    EXPECT_EQ(report(ledger, modules, options),
              "Top 1 stacks with outstanding allocations:\n"
              "\t1 byte in 1 allocation from stack\n"
              "\t\t#0 0x3000\n"
              "Filtered: showing 1 of 7 outstanding blocks (1 of 4361 bytes): of at most 1 byte\n" +
                  summary);
}

TEST_F(FilteredReport, HidingEverything) {
    options.min_size = 1'000'000;
    EXPECT_EQ(report(ledger, modules, options),
              "No outstanding allocations match the filters.\n"
              "Filtered: showing 0 of 7 outstanding blocks (0 of 4361 bytes): of at least 1000000 bytes\n" +
                  summary);
}

TEST_F(FilteredReport, NothingHiddenOrNoNowMeansNoFilterLine) {
    options.show_addresses = false;
    const std::string unfiltered = report(ledger, modules, options);
    EXPECT_TRUE(unfiltered.ends_with("\t\t#0 0x3000\n" + summary)) << unfiltered;

    options.max_size = 4000;  // active, but every block passes
    EXPECT_EQ(report(ledger, modules, options), unfiltered);
    options.max_size = 0;

    options.min_age_ms = 30'000;
    options.now_ns = 0;  // no "now": the age filter cannot apply
    EXPECT_FALSE(filters_active(options));
    EXPECT_EQ(report(ledger, modules, options), unfiltered);
}

TEST(WriteReport, TimestampedHeader) {
    // 03:00:41 local time on a day without a DST change, whatever the zone.
    std::tm local{};
    local.tm_year = 2024 - 1900;
    local.tm_mon = 0;
    local.tm_mday = 15;
    local.tm_hour = 3;
    local.tm_min = 0;
    local.tm_sec = 41;
    local.tm_isdst = -1;
    ReportOptions options;
    options.timestamp = std::mktime(&local);

    Ledger ledger;
    const ModuleMap none{};
    EXPECT_EQ(report(ledger, none, options),
              "[03:00:41] No outstanding allocations.\n"
              "Summary: 0 allocations (0 bytes), 0 frees, 0 bytes in 0 blocks outstanding\n");
    alloc(ledger, 0x1000, 16, stack(ledger, {0x401000}));
    EXPECT_EQ(report(ledger, none, options),
              "[03:00:41] Top 10 stacks with outstanding allocations:\n"
              "\t16 bytes in 1 allocation from stack\n"
              "\t\t#0 0x401000\n"
              "Summary: 1 allocation (16 bytes), 0 frees, 16 bytes in 1 block outstanding\n");
}

// The case the growth mark exists for: a big cache that holds steady must not be flagged; a
// small leak that grows at every report must be, and come first when sorting by growth.
TEST(GrowthReport, StableCacheIsNotGrowingSlowLeakIs) {
    Ledger ledger;
    const ModuleMap none{};
    const StackId cache = stack(ledger, {0xa000});
    const StackId leak = stack(ledger, {0xb000});
    alloc(ledger, 0x100000, 1 << 20, cache);  // 1 MB, kept
    GrowthTracker growth;
    for (RemoteAddr i = 0; i < 4; ++i) {
        alloc(ledger, 0x200000 + 0x10000 * i, 8192, leak);  // +8 KB per report
        // The cache churns but holds its size.
        alloc(ledger, 0x900000 + 0x1000 * i, 4096, cache);
        if (i > 0) release(ledger, 0x900000 + 0x1000 * (i - 1));
        growth.record(ledger);
    }
    EXPECT_FALSE(growth.growing(cache));
    EXPECT_TRUE(growth.growing(leak));

    ReportOptions options;
    options.sort = Sort::kGrowth;
    const std::string summary =
        "Summary: 9 allocations (1097728 bytes), 3 frees, 1085440 bytes in 6 blocks outstanding\n";
    EXPECT_EQ(report(ledger, none, options, &growth),
              "Top 10 stacks with outstanding allocations:\n"
              "\t32768 bytes in 4 allocations from stack (growing: +8192 +8192 +8192 bytes in the last 3 reports)\n"
              "\t\t#0 0xb000\n"
              "\t1052672 bytes in 2 allocations from stack\n"
              "\t\t#0 0xa000\n" +
                  summary);

    // By bytes (the default) the cache leads; the leak keeps its mark.
    options.sort = Sort::kBytes;
    EXPECT_EQ(report(ledger, none, options, &growth),
              "Top 10 stacks with outstanding allocations:\n"
              "\t1052672 bytes in 2 allocations from stack\n"
              "\t\t#0 0xa000\n"
              "\t32768 bytes in 4 allocations from stack (growing: +8192 +8192 +8192 bytes in the last 3 reports)\n"
              "\t\t#0 0xb000\n" +
                  summary);

    // Without a tracker, kGrowth is plain by-bytes order with no marks.
    options.sort = Sort::kGrowth;
    EXPECT_EQ(report(ledger, none, options),
              "Top 10 stacks with outstanding allocations:\n"
              "\t1052672 bytes in 2 allocations from stack\n"
              "\t\t#0 0xa000\n"
              "\t32768 bytes in 4 allocations from stack\n"
              "\t\t#0 0xb000\n" +
                  summary);
}

TEST(GrowthReport, GrowingStacksOrderedByGrowthThenBytesThenRest) {
    Ledger ledger;
    const ModuleMap none{};
    const StackId big = stack(ledger, {0x1000});    // stable, most bytes
    const StackId fast = stack(ledger, {0x2000});   // grows 300 per report
    const StackId slow = stack(ledger, {0x3000});   // grows 100 per report, from a big base
    const StackId slow2 = stack(ledger, {0x4000});  // grows 100 per report, smaller
    const StackId mid = stack(ledger, {0x5000});    // stable
    alloc(ledger, 0x100000, 100'000, big);
    alloc(ledger, 0x200000, 50'000, slow);
    alloc(ledger, 0x300000, 5'000, mid);
    GrowthTracker growth;
    RemoteAddr addr = 0x1000000;
    for (int i = 0; i < 4; ++i) {
        alloc(ledger, addr += 0x1000, 300, fast);
        alloc(ledger, addr += 0x1000, 100, slow);
        alloc(ledger, addr += 0x1000, 100, slow2);
        growth.record(ledger);
    }
    ReportOptions options{.top = 4};
    options.sort = Sort::kGrowth;
    const std::string text = report(ledger, none, options, &growth);
    const auto at = [&text](const char* frame) { return text.find(frame); };
    EXPECT_LT(at("#0 0x2000"), at("#0 0x3000"));  // growth 900 before 300
    EXPECT_LT(at("#0 0x3000"), at("#0 0x4000"));  // equal growth: more bytes first
    EXPECT_LT(at("#0 0x4000"), at("#0 0x1000"));  // then the rest by bytes
    EXPECT_EQ(at("#0 0x5000"), std::string::npos);  // past top 4
    EXPECT_NE(text.find("\t1200 bytes in 4 allocations from stack (growing: +300 +300 +300 bytes in the last 3 reports)\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("\t100000 bytes in 1 allocation from stack\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace leakcheck
