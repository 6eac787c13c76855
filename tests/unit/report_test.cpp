// Report: exact text of frames, summaries and whole reports built from a real Ledger, both for
// PCs outside any module (addresses only) and for PCs of this file's own functions (names,
// offsets, lines, inlining), plus the cost of a report, filtered or not, over a million live
// blocks. Filters, timestamps and growth marks in detail: report_filter_test.cpp.
#include "leakcheck/report.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#if defined(__clang__)
#define REPTEST_NOINLINE __attribute__((noinline, optnone))
#else
#define REPTEST_NOINLINE __attribute__((noinline, noipa))
#endif

namespace reptest {

using leakcheck::RemoteAddr;

struct Site {
    RemoteAddr pc;
    int line;
};

REPTEST_NOINLINE RemoteAddr caller_pc() {
    return reinterpret_cast<RemoteAddr>(__builtin_return_address(0));
}

__attribute__((always_inline)) inline Site inlined_leaf() {
    const RemoteAddr pc = caller_pc(); const int line = __LINE__;
    asm volatile("");
    return {pc, line};
}

// Returns the inlined call's site and the line host() called it from.
REPTEST_NOINLINE Site host(int* host_line) {
    const Site leaf = inlined_leaf(); *host_line = __LINE__;
    asm volatile("");
    return leaf;
}

REPTEST_NOINLINE Site other() {
    const RemoteAddr pc = caller_pc(); const int line = __LINE__;
    asm volatile("");
    return {pc, line};
}

}  // namespace reptest

namespace leakcheck {
namespace {

std::uint64_t now = 1'000'000'000;

StackId stack(Ledger& ledger, std::vector<RemoteAddr> pcs) { return ledger.intern_stack(pcs); }

void alloc(Ledger& ledger, RemoteAddr addr, std::uint64_t size, StackId id) {
    ledger.on_alloc(AllocEvent{addr, size, id, 1, AllocKind::kMalloc, now += 1000});
}

void release(Ledger& ledger, RemoteAddr addr) { ledger.on_free(FreeEvent{addr, 0, 1, FreeKind::kFree, now += 1000}); }

std::string report(const Ledger& ledger, const ModuleMap& modules, const ReportOptions& options) {
    Symbolizer symbolizer;
    std::ostringstream out;
    write_report(out, ledger, modules, symbolizer, options);
    return out.str();
}

TEST(FormatFrame, AllForms) {
    Location loc;
    loc.pc = 0x7f8f70863220;
    loc.module = "/abs/path/fib_leak";
    loc.module_offset = 0x1234;

    SourceFrame f;
    f.function = "fibonacci";
    f.offset = 0x1f;
    f.has_offset = true;
    f.file = "/src/fib_leak.c";
    f.line = 12;
    EXPECT_EQ(format_frame(loc, f), "fibonacci+0x1f (fib_leak.c:12) [/abs/path/fib_leak]");

    f.inlined = true;
    f.has_offset = false;
    EXPECT_EQ(format_frame(loc, f), "fibonacci (fib_leak.c:12) [/abs/path/fib_leak] (inlined)");

    f.inlined = false;
    f.has_offset = true;
    f.offset = 0xABC;
    f.file = "fib_leak.c";  // relative, no directory
    f.line = 0;             // file known, line not
    EXPECT_EQ(format_frame(loc, f), "fibonacci+0xabc (fib_leak.c) [/abs/path/fib_leak]");

    f.file.clear();  // symbol table only
    EXPECT_EQ(format_frame(loc, f), "fibonacci+0xabc [/abs/path/fib_leak]");

    const SourceFrame unknown;
    EXPECT_EQ(format_frame(loc, unknown), "?? [/abs/path/fib_leak+0x1234]");

    loc.module.clear();
    loc.module_offset = 0;
    EXPECT_EQ(format_frame(loc, unknown), "0x7f8f70863220");
}

TEST(WriteSummary, PluralsAndUnknownFrees) {
    const auto summary = [](const LedgerTotals& t) {
        std::ostringstream out;
        write_summary(out, t);
        return out.str();
    };
    EXPECT_EQ(summary({.allocs = 12, .alloc_bytes = 98304, .frees = 7, .live_blocks = 5, .live_bytes = 40960}),
              "12 allocations (98304 bytes), 7 frees, 40960 bytes in 5 blocks outstanding");
    EXPECT_EQ(summary({.allocs = 12, .alloc_bytes = 98304, .frees = 7, .unknown_frees = 2, .live_blocks = 5, .live_bytes = 40960}),
              "12 allocations (98304 bytes), 7 frees, 40960 bytes in 5 blocks outstanding, 2 frees of unknown blocks");
    EXPECT_EQ(summary({.allocs = 1, .alloc_bytes = 1, .frees = 1, .unknown_frees = 1, .live_blocks = 1, .live_bytes = 1}),
              "1 allocation (1 byte), 1 free, 1 byte in 1 block outstanding, 1 free of an unknown block");
    EXPECT_EQ(summary({}), "0 allocations (0 bytes), 0 frees, 0 bytes in 0 blocks outstanding");
}

TEST(WriteReport, NothingOutstanding) {
    Ledger ledger;
    const ModuleMap none{};
    EXPECT_EQ(report(ledger, none, {}),
              "No outstanding allocations.\n"
              "Summary: 0 allocations (0 bytes), 0 frees, 0 bytes in 0 blocks outstanding\n");

    alloc(ledger, 0x1000, 16, stack(ledger, {0x401000}));
    release(ledger, 0x1000);
    EXPECT_EQ(report(ledger, none, {.top = 10, .max_frames = 32, .show_addresses = true}),
              "No outstanding allocations.\n"
              "Summary: 1 allocation (16 bytes), 1 free, 0 bytes in 0 blocks outstanding\n");
}

// Stacks whose PCs lie in no module, so every frame prints as its bare address.
class UnknownModuleReport : public ::testing::Test {
protected:
    void SetUp() override {
        const StackId s1 = stack(ledger, {0x1000, 0x2000, 0x3000});
        const StackId s2 = stack(ledger, {0x4000});
        const StackId s3 = stack(ledger, {0x5000, 0x6000});
        const StackId s4 = stack(ledger, {0x7000});
        alloc(ledger, 0x10000, 100, s1);
        alloc(ledger, 0x30000, 100, s1);
        alloc(ledger, 0x40000, 300, s2);  // as many bytes as s1, in fewer blocks: after it
        alloc(ledger, 0x20000, 100, s1);
        alloc(ledger, 0x50000, 50, s3);
        alloc(ledger, 0x50100, 50, s3);
        release(ledger, 0x50100);
        alloc(ledger, 0x60000, 1000, s4);  // all freed: not shown
        release(ledger, 0x60000);
        alloc(ledger, 0x70000, 1, 0);  // allocation whose stack was not captured
        release(ledger, 0x99999);
    }

    Ledger ledger;
    const ModuleMap modules{};  // empty
};

TEST_F(UnknownModuleReport, AddressesSortedAndFramesLimited) {
    const ReportOptions options{.top = 10, .max_frames = 2, .show_addresses = true, .show_unknown_frees = true};
    EXPECT_EQ(report(ledger, modules, options),
              "Top 10 stacks with outstanding allocations:\n"
              "\taddr = 10000 size = 100\n"
              "\taddr = 20000 size = 100\n"
              "\taddr = 30000 size = 100\n"
              "\t300 bytes in 3 allocations from stack\n"
              "\t\t#0 0x1000\n"
              "\t\t#1 0x2000\n"
              "\taddr = 40000 size = 300\n"
              "\t300 bytes in 1 allocation from stack\n"
              "\t\t#0 0x4000\n"
              "\taddr = 50000 size = 50\n"
              "\t50 bytes in 1 allocation from stack\n"
              "\t\t#0 0x5000\n"
              "\t\t#1 0x6000\n"
              "\taddr = 70000 size = 1\n"
              "\t1 byte in 1 allocation from stack\n"
              "\t\t(no stack recorded)\n"
              "Summary: 8 allocations (1701 bytes), 2 frees, 651 bytes in 6 blocks outstanding, "
              "1 free of an unknown block\n");
}

TEST_F(UnknownModuleReport, TopLimitsStacks) {
    EXPECT_EQ(report(ledger, modules, {.top = 2, .max_frames = 32, .show_addresses = false, .show_unknown_frees = false}),
              "Top 2 stacks with outstanding allocations:\n"
              "\t300 bytes in 3 allocations from stack\n"
              "\t\t#0 0x1000\n"
              "\t\t#1 0x2000\n"
              "\t\t#2 0x3000\n"
              "\t300 bytes in 1 allocation from stack\n"
              "\t\t#0 0x4000\n"
              // show_unknown_frees off: no unknown-free count.
              "Summary: 8 allocations (1701 bytes), 2 frees, 651 bytes in 6 blocks outstanding\n");
}

std::string hex(RemoteAddr v) {
    std::ostringstream s;
    s << std::hex << v;
    return s.str();
}

TEST(WriteReport, SymbolizesFramesOfThisProgram) {
    int host_line = 0;
    const reptest::Site leaf = reptest::host(&host_line);
    const reptest::Site other = reptest::other();
    ModuleMap modules;
    modules.refresh(::getpid());
    const std::string exe = std::filesystem::canonical("/proc/self/exe").string();

    Ledger ledger;
    alloc(ledger, 0x5000, 64, stack(ledger, {leaf.pc, other.pc, 0x10}));
    const auto host_offset = leaf.pc - reinterpret_cast<RemoteAddr>(&reptest::host);
    const auto other_offset = other.pc - reinterpret_cast<RemoteAddr>(&reptest::other);
    EXPECT_EQ(report(ledger, modules, {}),
              "Top 10 stacks with outstanding allocations:\n"
              "\t64 bytes in 1 allocation from stack\n"
              "\t\t#0 reptest::inlined_leaf() (report_test.cpp:" + std::to_string(leaf.line) + ") [" + exe + "] (inlined)\n"
              "\t\t#1 reptest::host(int*)+0x" + hex(host_offset) + " (report_test.cpp:" + std::to_string(host_line) + ") [" + exe + "]\n"
              "\t\t#2 reptest::other()+0x" + hex(other_offset) + " (report_test.cpp:" + std::to_string(other.line) + ") [" + exe + "]\n"
              "\t\t#3 0x10\n"
              "Summary: 1 allocation (64 bytes), 0 frees, 64 bytes in 1 block outstanding\n");
}

// 100k stacks of 10 blocks each; stack k's blocks are k bytes, so the order is known. Block j
// (of stack j % 100k + 1) is allocated j microseconds after the first.
constexpr RemoteAddr kStacks = 100'000;

void fill_million(Ledger& ledger) {
    std::vector<StackId> ids;
    for (RemoteAddr k = 1; k <= kStacks; ++k) ids.push_back(stack(ledger, {0x1000 + 16 * k, 0x2000}));
    for (RemoteAddr j = 0; j < 10 * kStacks; ++j)
        alloc(ledger, 0x10000000 + 64 * j, j % kStacks + 1, ids[j % kStacks]);
}

TEST(WriteReport, MillionBlocksInUnderASecond) {
    Ledger ledger;
    fill_million(ledger);
    const ModuleMap modules{};

    const auto start = std::chrono::steady_clock::now();
    const std::string text = report(ledger, modules, {.top = 10, .max_frames = 32, .show_addresses = true});
    const auto elapsed = std::chrono::steady_clock::now() - start;

    std::string expected_top = "Top 10 stacks with outstanding allocations:\n";
    for (RemoteAddr j = kStacks - 1; j < 10 * kStacks; j += kStacks)
        expected_top += "\taddr = " + hex(0x10000000 + 64 * j) + " size = 100000\n";
    expected_top += "\t1000000 bytes in 10 allocations from stack\n\t\t#0 0x" + hex(0x1000 + 16 * kStacks) +
                    "\n\t\t#1 0x2000\n\taddr = ";
    EXPECT_EQ(text.substr(0, expected_top.size()), expected_top);
    EXPECT_TRUE(text.ends_with("\t999910 bytes in 10 allocations from stack\n\t\t#0 0x" + hex(0x1000 + 16 * (kStacks - 9)) +
                               "\n\t\t#1 0x2000\nSummary: 1000000 allocations (50000500000 bytes), 0 frees, "
                               "50000500000 bytes in 1000000 blocks outstanding\n"));
#if !defined(__SANITIZE_ADDRESS__)
    EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 1000);
#endif
}

TEST(WriteReport, MillionBlocksFilteredInUnderASecond) {
    Ledger ledger;
    fill_million(ledger);
    const ModuleMap modules{};
    // Blocks 0..499999 are older than 500 ms at epoch + 1 s: 5 per stack. Of those, stacks
    // 1..50000 have blocks of at most 50000 bytes; stack 50000 leads with 5 x 50000.
    ReportOptions options{.top = 10, .max_frames = 32, .show_addresses = true};
    options.min_age_ms = 500;
    options.now_ns = ledger.epoch_ns() + 1'000'000'000;
    options.max_size = 50'000;

    const auto start = std::chrono::steady_clock::now();
    const std::string text = report(ledger, modules, options);
    const auto elapsed = std::chrono::steady_clock::now() - start;

    std::string expected_top = "Top 10 stacks with outstanding allocations:\n";
    for (RemoteAddr j = 49'999; j < 500'000; j += kStacks)
        expected_top += "\taddr = " + hex(0x10000000 + 64 * j) + " size = 50000\n";
    expected_top += "\t250000 bytes in 5 allocations from stack\n\t\t#0 0x" + hex(0x1000 + 16 * 50'000) +
                    "\n\t\t#1 0x2000\n\taddr = ";
    EXPECT_EQ(text.substr(0, expected_top.size()), expected_top);
    EXPECT_TRUE(text.ends_with("\t249955 bytes in 5 allocations from stack\n\t\t#0 0x" + hex(0x1000 + 16 * 49'991) +
                               "\n\t\t#1 0x2000\n"
                               "Filtered: showing 250000 of 1000000 outstanding blocks (6250125000 of 50000500000 "
                               "bytes): older than 500 ms, of at most 50000 bytes\n"
                               "Summary: 1000000 allocations (50000500000 bytes), 0 frees, "
                               "50000500000 bytes in 1000000 blocks outstanding\n"))
        << text.substr(text.size() - std::min<std::size_t>(text.size(), 600));
#if !defined(__SANITIZE_ADDRESS__)
    EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 1000);
#endif
}

}  // namespace
}  // namespace leakcheck
