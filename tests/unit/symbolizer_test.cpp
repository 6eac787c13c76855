// Symbolizer: return addresses captured in this file's own functions symbolize to the exact
// function (demangled), line (__LINE__ of the call) and offset, inlined frames come out as
// frames of their own, unknown modules and unreadable files degrade to empty frames, and the
// cache only goes to LLVM once per PC.
#include "leakcheck/symbolizer.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

// noipa: no clones (foo.constprop.0) and no inlining, so each function is itself at run time.
#if defined(__clang__)
#define SYMTEST_NOINLINE __attribute__((noinline, optnone))
#else
#define SYMTEST_NOINLINE __attribute__((noinline, noipa))
#endif

// Outside leakcheck's namespace so the demangled names stay short and exact.
namespace symtest {

using leakcheck::RemoteAddr;

struct Site {
    RemoteAddr pc;  // a return address: just after a call
    int line;       // the line of that call
};

SYMTEST_NOINLINE RemoteAddr caller_pc() {
    return reinterpret_cast<RemoteAddr>(__builtin_return_address(0));
}

SYMTEST_NOINLINE Site call_site() {
    const RemoteAddr pc = caller_pc(); const int line = __LINE__;
    asm volatile("");  // code after the call: it cannot become a tail call
    return {pc, line};
}

struct Klass {
    SYMTEST_NOINLINE Site method(int n);
};

Site Klass::method(int n) {
    const RemoteAddr pc = caller_pc() + static_cast<RemoteAddr>(n); const int line = __LINE__;
    asm volatile("");
    return {pc, line};
}

__attribute__((always_inline)) inline Site inlined_part() {
    const RemoteAddr pc = caller_pc(); const int line = __LINE__;
    asm volatile("");
    return {pc, line};
}

SYMTEST_NOINLINE std::pair<Site, int> inline_host() {
    const Site inner = inlined_part(); const int line = __LINE__;
    asm volatile("");
    return {inner, line};
}

}  // namespace symtest

namespace leakcheck {
namespace {

class SymbolizerTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        modules_ = new ModuleMap;
        modules_->refresh(::getpid());
    }
    static void TearDownTestSuite() {
        delete modules_;
        modules_ = nullptr;
    }
    static const ModuleMap& modules() { return *modules_; }
    static std::string self() { return std::filesystem::canonical("/proc/self/exe").string(); }

private:
    static ModuleMap* modules_;
};
ModuleMap* SymbolizerTest::modules_ = nullptr;

std::string base(const std::string& path) { return std::filesystem::path(path).filename().string(); }

TEST_F(SymbolizerTest, FunctionLineAndOffsetOfAReturnAddress) {
    const symtest::Site site = symtest::call_site();
    const Module* m = modules().find(site.pc);
    ASSERT_NE(m, nullptr);
    Symbolizer symbolizer;
    const Location& loc = symbolizer.symbolize(m, site.pc, true);

    EXPECT_EQ(loc.pc, site.pc);
    EXPECT_EQ(loc.module, self());
    EXPECT_EQ(loc.module_offset, site.pc - m->load_bias);
    ASSERT_EQ(loc.frames.size(), 1u);
    const SourceFrame& f = loc.frames[0];
    EXPECT_EQ(f.function, "symtest::call_site()");
    EXPECT_EQ(base(f.file), "symbolizer_test.cpp");
    EXPECT_EQ(f.line, static_cast<std::uint32_t>(site.line));
    EXPECT_FALSE(f.inlined);
    // The offset is the return address's own, not pc - 1's (memleak prints it so).
    ASSERT_TRUE(f.has_offset);
    EXPECT_EQ(f.offset, site.pc - reinterpret_cast<RemoteAddr>(&symtest::call_site));
}

TEST_F(SymbolizerTest, DemanglesMethods) {
    symtest::Klass k;
    const symtest::Site site = k.method(0);
    Symbolizer symbolizer;
    const Location& loc = symbolizer.symbolize(modules().find(site.pc), site.pc, true);
    ASSERT_EQ(loc.frames.size(), 1u);
    EXPECT_EQ(loc.frames[0].function, "symtest::Klass::method(int)");
    EXPECT_EQ(loc.frames[0].line, static_cast<std::uint32_t>(site.line));
    EXPECT_TRUE(loc.frames[0].has_offset);
}

TEST_F(SymbolizerTest, InlinedFramesInnermostFirst) {
    const auto [inner, host_line] = symtest::inline_host();
    Symbolizer symbolizer;
    const Location& loc = symbolizer.symbolize(modules().find(inner.pc), inner.pc, true);
    ASSERT_EQ(loc.frames.size(), 2u);

    const SourceFrame& inlined = loc.frames[0];
    EXPECT_EQ(inlined.function, "symtest::inlined_part()");
    EXPECT_EQ(base(inlined.file), "symbolizer_test.cpp");
    EXPECT_EQ(inlined.line, static_cast<std::uint32_t>(inner.line));
    EXPECT_TRUE(inlined.inlined);
    EXPECT_FALSE(inlined.has_offset);

    const SourceFrame& host = loc.frames[1];
    EXPECT_EQ(host.function, "symtest::inline_host()");
    EXPECT_EQ(host.line, static_cast<std::uint32_t>(host_line));
    EXPECT_FALSE(host.inlined);
    ASSERT_TRUE(host.has_offset);
    EXPECT_EQ(host.offset, inner.pc - reinterpret_cast<RemoteAddr>(&symtest::inline_host));
}

TEST_F(SymbolizerTest, ReturnAddressFlagDecidesWhichInstructionIsLookedUp) {
    // A function's first byte, as an exact pc, is that function at offset 0; as a return
    // address it would be the last byte of whatever precedes it.
    const auto entry = reinterpret_cast<RemoteAddr>(&symtest::call_site);
    Symbolizer symbolizer;
    const Location& exact = symbolizer.symbolize(modules().find(entry), entry, false);
    ASSERT_EQ(exact.frames.size(), 1u);
    EXPECT_EQ(exact.frames[0].function, "symtest::call_site()");
    EXPECT_TRUE(exact.frames[0].has_offset);
    EXPECT_EQ(exact.frames[0].offset, 0u);

    const Location& as_return = symbolizer.symbolize(modules().find(entry), entry, true);
    EXPECT_NE(as_return.frames.back().function, "symtest::call_site()");
    EXPECT_EQ(symbolizer.cache_size(), 2u);
}

TEST_F(SymbolizerTest, LibcFunctionsHaveNamesWithoutDebugInfoToo) {
    // Only what holds with or without libc6-dbg: the exported name and the offset.
    const auto pc = reinterpret_cast<RemoteAddr>(&::getpid) + 1;
    const Module* m = modules().find(pc);
    ASSERT_NE(m, nullptr);
    Symbolizer symbolizer;
    const Location& loc = symbolizer.symbolize(m, pc, false);
    EXPECT_TRUE(loc.module.ends_with("/libc.so.6")) << loc.module;
    const SourceFrame& f = loc.frames.back();
    EXPECT_NE(f.function.find("getpid"), std::string::npos) << f.function;
    EXPECT_TRUE(f.has_offset);
    EXPECT_EQ(f.offset, 1u);
}

TEST_F(SymbolizerTest, CachesPerPcAndReturnAddressFlag) {
    const symtest::Site site = symtest::call_site();
    const Module* m = modules().find(site.pc);
    Symbolizer symbolizer;
    EXPECT_EQ(symbolizer.lookups(), 0u);
    const Location& first = symbolizer.symbolize(m, site.pc, true);
    const Location& again = symbolizer.symbolize(m, site.pc, true);
    EXPECT_EQ(&first, &again);
    EXPECT_EQ(symbolizer.lookups(), 1u);
    EXPECT_EQ(symbolizer.cache_size(), 1u);

    symbolizer.symbolize(m, site.pc, false);
    EXPECT_EQ(symbolizer.lookups(), 2u);
    EXPECT_EQ(symbolizer.cache_size(), 2u);
    symbolizer.symbolize(m, site.pc, false);
    EXPECT_EQ(symbolizer.lookups(), 2u);

    // Another module at that address now (a library unloaded and another mapped there): the
    // old answer is not reused.
    const Location& none = symbolizer.symbolize(nullptr, site.pc, true);
    EXPECT_EQ(symbolizer.lookups(), 3u);
    EXPECT_EQ(symbolizer.cache_size(), 2u);
    EXPECT_TRUE(none.module.empty());
}

TEST_F(SymbolizerTest, PcOutsideAnyModule) {
    Symbolizer symbolizer;
    const Location& loc = symbolizer.symbolize(nullptr, 0x1234, true);
    EXPECT_EQ(loc.pc, 0x1234u);
    EXPECT_EQ(loc.module, "");
    EXPECT_EQ(loc.module_offset, 0u);
    ASSERT_EQ(loc.frames.size(), 1u);
    EXPECT_EQ(loc.frames[0].function, "");
    EXPECT_FALSE(loc.frames[0].has_offset);
    EXPECT_EQ(loc.frames[0].file, "");
    EXPECT_EQ(loc.frames[0].line, 0u);
}

void expect_unknown_frame(const Location& loc, const std::string& path, RemoteAddr offset) {
    EXPECT_EQ(loc.module, path);
    EXPECT_EQ(loc.module_offset, offset);
    ASSERT_EQ(loc.frames.size(), 1u);
    EXPECT_EQ(loc.frames[0].function, "");
    EXPECT_FALSE(loc.frames[0].has_offset);
    EXPECT_EQ(loc.frames[0].file, "");
    EXPECT_FALSE(loc.frames[0].inlined);
}

TEST_F(SymbolizerTest, MissingOrNonElfFilesGiveUnknownFrames) {
    Module gone;
    gone.path = gone.open_path = "/nonexistent/libgone.so";
    gone.start = gone.load_bias = 0x7f0000000000;
    gone.end = 0x7f0000010000;

    const std::string junk_path =
        (std::filesystem::temp_directory_path() / ("symbolizer_test_junk." + std::to_string(::getpid()))).string();
    std::ofstream(junk_path) << std::string(4096, 'x');
    Module junk = gone;
    junk.path = junk.open_path = junk_path;

    Symbolizer symbolizer;
    // Twice each: LLVM reports a bad file once, then answers with nothing at all.
    expect_unknown_frame(symbolizer.symbolize(&gone, 0x7f0000001234, true), gone.path, 0x1234);
    expect_unknown_frame(symbolizer.symbolize(&gone, 0x7f0000005678, true), gone.path, 0x5678);
    expect_unknown_frame(symbolizer.symbolize(&junk, 0x7f0000001234, true), junk.path, 0x1234);
    expect_unknown_frame(symbolizer.symbolize(&junk, 0x7f0000005678, false), junk.path, 0x5678);
    std::filesystem::remove(junk_path);
}

}  // namespace
}  // namespace leakcheck
