// Allocators people run besides glibc's, called through their own APIs: jemalloc (mallocx,
// rallocx, xallocx, sdallocx, dallocx), mimalloc (mi_*), tcmalloc (tc_*), and a build with
// prefixed symbols (--symbols-prefix, memleak's option). Each fixture's ground truth is in its
// header (fixtures/allocators/, fixtures/prefixed_alloc.c); the program must run unharmed.
// Also -t/--trace, one line per event with the caller.
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <regex>
#include <string>
#include <vector>

#include "leakcheck_run.hpp"
#include "traced_run.hpp"

extern char** environ;

namespace leakcheck::e2e {
namespace {

constexpr std::uint64_t kEmergencyPool = 72704;

// The fixture, or a failure that says how to get it (it is built only where its library is).
::testing::AssertionResult built(const std::string& name, const std::string& package) {
    if (is_executable(fixture(name))) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << fixture(name) << " was not built: install " << package
                                         << " (make deps does) and configure again";
}

// One leaking stack of a fixture: frame 0 is `function` at `file_line`, frame 1 its caller.
struct Expected {
    std::string function;
    std::string file_line;
    std::string caller;
    std::string caller_line;
    std::uint64_t bytes;
    std::uint64_t blocks;
};

void expect_stacks(const Report& r, const std::vector<Expected>& expected) {
    for (const Expected& e : expected) {
        const Stack* s = r.stack_with(e.function, e.file_line);
        ASSERT_NE(s, nullptr) << e.function << " at " << e.file_line << "\n" << dump(r);
        EXPECT_EQ(s->bytes, e.bytes) << e.file_line;
        EXPECT_EQ(s->blocks, e.blocks) << e.file_line;
        EXPECT_TRUE(frame_is(*s, 0, e.function, e.file_line));
        EXPECT_TRUE(frame_is(*s, 1, e.caller, e.caller_line));
    }
}

// Bytes and blocks of the stacks none of whose frames come from `file`.
std::pair<std::uint64_t, std::uint64_t> others(const Report& r, const std::string& file) {
    std::pair<std::uint64_t, std::uint64_t> sum{0, 0};
    for (const Stack& s : r.stacks)
        if (!s.has_file(file)) sum.first += s.bytes, sum.second += s.blocks;
    return sum;
}

TEST(Allocators, JemallocOwnApi) {
    ASSERT_TRUE(built("jemalloc_api", "libjemalloc-dev"));
    const Traced t = trace({"-T", "100"}, {fixture("jemalloc_api")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.run.out, "jemalloc_api: done\n");
    const Report& r = t.report;
    expect_summary(r, 58, 95270, 51, 81428, 7);
    expect_stacks(r, {{"leak_mallocx", "jemalloc_api.c:37", "main", "jemalloc_api.c:68", 300, 3},
                      {"leak_rallocx", "jemalloc_api.c:42", "main", "jemalloc_api.c:69", 200, 1},
                      {"leak_xallocx", "jemalloc_api.c:46", "main", "jemalloc_api.c:70", 8192, 1},
                      {"leak_xallocx", "jemalloc_api.c:48", "main", "jemalloc_api.c:70", 32, 1}});
    EXPECT_EQ(others(r, "jemalloc_api.c"), std::make_pair(kEmergencyPool, std::uint64_t{1}));
}

TEST(Allocators, MimallocOwnApi) {
    ASSERT_TRUE(built("mimalloc_api", "libmimalloc-dev"));
    const Traced t = trace({"-T", "100"}, {fixture("mimalloc_api")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);  // also: no mismatched-release findings (free is operator delete)
    EXPECT_EQ(t.run.out, "mimalloc_api: done\n");
    const Report& r = t.report;
    expect_summary(r, 61, 2484, 52, 476, 9);
    expect_stacks(r, {{"leak_small", "mimalloc_api.c:39", "main", "mimalloc_api.c:75", 200, 2},
                      {"leak_small", "mimalloc_api.c:40", "main", "mimalloc_api.c:75", 80, 1},
                      {"leak_small", "mimalloc_api.c:41", "main", "mimalloc_api.c:75", 48, 1},
                      {"leak_strings", "mimalloc_api.c:45", "main", "mimalloc_api.c:76", 14, 1},
                      {"leak_strings", "mimalloc_api.c:46", "main", "mimalloc_api.c:76", 4, 1},
                      {"leak_resized", "mimalloc_api.c:51", "main", "mimalloc_api.c:77", 64, 1},
                      {"leak_resized", "mimalloc_api.c:52", "main", "mimalloc_api.c:77", 50, 1},
                      {"leak_resized", "mimalloc_api.c:54", "main", "mimalloc_api.c:77", 16, 1}});
    EXPECT_EQ(r.stacks.size(), 8u) << dump(r);
}

TEST(Allocators, TcmallocOwnApi) {
    ASSERT_TRUE(built("tcmalloc_api", "libgoogle-perftools-dev"));
    const Traced t = trace({"-T", "100"}, {fixture("tcmalloc_api")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    EXPECT_EQ(t.run.out, "tcmalloc_api: done\n");
    const Report& r = t.report;
    // tcmalloc's initialisation calls setenv twice: glibc copies the environment's pointer
    // array, (n + 2) * 8 bytes, then grows it to (n + 3) * 8, n being the number of variables
    // the program started with (this test's environment, passed on unchanged).
    std::uint64_t n = 0;
    for (char** e = environ; *e; ++e) ++n;
    const std::uint64_t environ_block = (n + 3) * 8;
    expect_summary(r, 71, 74464 + (n + 2) * 8 + environ_block, 56, 73304 + environ_block, 15);
    const std::string c = "(anonymous namespace)::leak_c_api()";
    const std::string cxx = "(anonymous namespace)::leak_cxx_api()";
    expect_stacks(r, {{c, "tcmalloc_api.cpp:38", "main", "tcmalloc_api.cpp:68", 100, 1},
                      {c, "tcmalloc_api.cpp:39", "main", "tcmalloc_api.cpp:68", 60, 1},
                      {c, "tcmalloc_api.cpp:40", "main", "tcmalloc_api.cpp:68", 120, 1},
                      {c, "tcmalloc_api.cpp:41", "main", "tcmalloc_api.cpp:68", 96, 1},
                      {c, "tcmalloc_api.cpp:42", "main", "tcmalloc_api.cpp:68", 40, 1},
                      {cxx, "tcmalloc_api.cpp:46", "main", "tcmalloc_api.cpp:69", 24, 1},
                      {cxx, "tcmalloc_api.cpp:47", "main", "tcmalloc_api.cpp:69", 48, 1}});
    // libstdc++'s pool and what tcmalloc's own initialisation keeps.
    EXPECT_EQ(others(r, "tcmalloc_api.cpp"), std::make_pair(kEmergencyPool + 112 + environ_block, std::uint64_t{8}));
}

TEST(Allocators, SymbolsPrefixHooksThePrefixedFunctions) {
    const Traced t = trace({"--symbols-prefix", "xx_"}, {fixture("prefixed_alloc")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    expect_summary(t.report, 15, 319, 11, 154, 4);
    expect_stacks(t.report, {{"leak_prefixed", "prefixed_alloc.c:32", "main", "prefixed_alloc.c:45", 80, 2},
                             {"leak_prefixed", "prefixed_alloc.c:33", "main", "prefixed_alloc.c:45", 24, 1},
                             {"leak_prefixed", "prefixed_alloc.c:34", "main", "prefixed_alloc.c:45", 50, 1}});
    EXPECT_EQ(t.report.after, "");
}

TEST(Allocators, WithoutThePrefixOnlyTheWrappersCallsAreSeen) {
    const Traced t = trace({}, {fixture("prefixed_alloc")});
    ASSERT_TRACED(t);
    EXPECT_UNHARMED(t, 0);
    expect_summary(t.report, 15, 319, 11, 154, 4);
    expect_stacks(t.report,
                  {{"xx_malloc", "prefixed_alloc.c:24", "leak_prefixed", "prefixed_alloc.c:32", 80, 2},
                   {"xx_calloc", "prefixed_alloc.c:25", "leak_prefixed", "prefixed_alloc.c:33", 24, 1},
                   {"xx_realloc", "prefixed_alloc.c:26", "leak_prefixed", "prefixed_alloc.c:34", 50, 1}});
}

TEST(Allocators, APrefixNothingHasIsReported) {
    const RunResult r = run_leakcheck({"--symbols-prefix", "je_"}, {fixture("prefixed_alloc")});
    ASSERT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(120)) << describe(r) << "\n" << r.err;
    const Report report = parse_report(r.err);
    ASSERT_TRUE(report.ok) << report.error;
    EXPECT_EQ(report.after, "leakcheck: never matched: --symbols-prefix je_ (nothing was hooked for them)\n");
}

// -t: one line per allocation and release, in the order they happened, with the caller.
TEST(Trace, EachAllocationAndReleaseWithItsCaller) {
    const RunResult r = run_leakcheck({"-t"}, {fixture("prefixed_alloc")});
    ASSERT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited(0)) << describe(r) << "\n" << r.err;
    EXPECT_EQ(r.out, "prefixed_alloc: done\n");
    static const std::regex line_re(
        R"(^leakcheck: trace: (\w+)\((?:(\d+)\) = 0x([0-9a-f]+)|0x([0-9a-f]+)\)) in thread (\d+) from (.+)$)");
    std::vector<std::string> calls;
    std::map<std::string, std::string> allocated_by;  // addr -> caller
    std::size_t frees_of_known = 0;
    std::string tid;
    std::string report_text;
    for (const std::string& line : test::lines(r.err)) {
        std::smatch m;
        if (line.rfind("leakcheck: trace: ", 0) != 0) {
            report_text += line + "\n";
            continue;
        }
        ASSERT_TRUE(std::regex_match(line, m, line_re)) << line;
        if (tid.empty()) tid = m[5];
        EXPECT_EQ(m[5], tid) << line;  // the program has one thread
        const std::string caller = m[6];
        if (m[2].matched) {
            calls.push_back(std::string(m[1]) + "(" + std::string(m[2]) + ") from " +
                            caller.substr(0, caller.find('+')));
            allocated_by[m[3]] = caller;
        } else {
            calls.push_back(std::string(m[1]) + " from " + caller.substr(0, caller.find('+')));
            if (allocated_by.count(m[4])) ++frees_of_known;
        }
    }
    // released(): 10 malloc(16) from xx_malloc, 10 frees from xx_free; leak_prefixed: two
    // malloc(40), calloc(24), malloc(5), the realloc's release of it and its realloc(50).
    std::vector<std::string> expected;
    for (int i = 0; i < 10; ++i) expected.push_back("malloc(16) from xx_malloc");
    for (int i = 0; i < 10; ++i) expected.push_back("free from xx_free");
    expected.insert(expected.end(), {"malloc(40) from xx_malloc", "malloc(40) from xx_malloc",
                                     "calloc(24) from xx_calloc", "malloc(5) from xx_malloc",
                                     "realloc from xx_realloc", "realloc(50) from xx_realloc"});
    EXPECT_EQ(calls, expected) << r.err;
    EXPECT_EQ(frees_of_known, 11u);
    const Report report = parse_report(report_text);
    ASSERT_TRUE(report.ok) << report.error << "\n" << report_text;
    expect_summary(report, 15, 319, 11, 154, 4);
}

}  // namespace
}  // namespace leakcheck::e2e
