// --hook and -O that match nothing are never silent: a report that looks clean because the
// allocator was never hooked must not pass for one. Attached (every module is known), an
// unmatched request is refused before anything is planted: one line naming it, exit 120, the
// process untouched and running. Launched (a library may still be loaded later), the report
// ends with the requests never matched and leakcheck exits 120 unless the program's own
// status was non-zero.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "background_process.hpp"
#include "leakcheck_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;
using test::BackgroundProcess;

// TracerPid of a process, from /proc (-1 when it cannot be read).
long tracer_pid(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("TracerPid:", 0) == 0) return std::stol(line.substr(10));
    return -1;
}

RunResult leakcheck_with(const std::vector<std::string>& args) {
    std::vector<std::string> argv{leakcheck_bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions opts;
    opts.timeout = 30s;
    return test::run_process(argv, opts);
}

struct AttachCase {
    std::string name;
    std::vector<std::string> options;
    std::string named;  // what the refusal must name
};

void PrintTo(const AttachCase& c, std::ostream* os) { *os << c.name; }

class UnmatchedWhenAttaching : public ::testing::TestWithParam<AttachCase> {};

TEST_P(UnmatchedWhenAttaching, IsRefusedBeforeAnythingIsPlanted) {
    BackgroundProcess target({fixture("slow_leak"), "20", "60"});
    ASSERT_TRUE(target.wait_for_line("^leaked 2 ", 10s));
    std::vector<std::string> args = GetParam().options;
    args.insert(args.end(), {"-p", std::to_string(target.pid()), "1", "1"});
    const RunResult r = leakcheck_with(args);
    ASSERT_FALSE(r.timed_out) << r.err;
    EXPECT_TRUE(r.exited(120)) << describe(r) << "\n" << r.err;
    EXPECT_EQ(r.out, "");
    const std::vector<std::string> err = test::lines(r.err);
    ASSERT_EQ(err.size(), 1u) << r.err;
    EXPECT_EQ(err[0], "leakcheck: nothing in process " + std::to_string(target.pid()) + " matches " +
                          GetParam().named +
                          " (no module defines that symbol or has allocator functions); nothing was hooked");
    // Untouched: no longer traced, and leaking on as before.
    EXPECT_EQ(tracer_pid(target.pid()), 0);
    const std::size_t lines = target.line_count();
    EXPECT_TRUE(target.wait_for_lines(lines + 3, 10s)) << "the target stopped after the refusal";
}

INSTANTIATE_TEST_SUITE_P(
    Options, UnmatchedWhenAttaching,
    ::testing::Values(AttachCase{"hook", {"--hook", "no_such_allocator=malloc"}, "--hook no_such_allocator"},
                      AttachCase{"object", {"-O", "libnosuchthing"}, "-O libnosuchthing"},
                      // libm is mapped, but defines no allocator function.
                      AttachCase{"object_without_allocator", {"-O", "libm.so"}, "-O libm.so"},
                      AttachCase{"both",
                                 {"--hook", "no_such_allocator=free", "-O", "libnosuchthing"},
                                 "--hook no_such_allocator, -O libnosuchthing"}),
    [](const ::testing::TestParamInfo<AttachCase>& info) { return info.param.name; });

TEST(UnmatchedWhenAttaching, AMatchingHookAndObjectAttachAsUsual) {
    BackgroundProcess target({fixture("slow_leak"), "20", "60"});
    ASSERT_TRUE(target.wait_for_line("^leaked 2 ", 10s));
    // -O libc matches glibc's allocator; --hook on a function slow_leak defines.
    const RunResult r =
        leakcheck_with({"-O", "libc.so", "--hook", "fibonacci=malloc", "-p", std::to_string(target.pid()), "1", "1"});
    ASSERT_FALSE(r.timed_out) << r.err;
    EXPECT_TRUE(r.exited(0)) << describe(r) << "\n" << r.err;
    EXPECT_EQ(r.err.find("matches"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("leakcheck: detached from process"), std::string::npos) << r.err;
}

TEST(UnmatchedWhenLaunching, TheReportSaysSoAndTheStatusIs120) {
    const RunResult r = leakcheck_with({"--hook", "no_such_allocator=malloc", "-O", "libnosuchthing", "--",
                                        fixture("no_leak")});
    ASSERT_FALSE(r.timed_out) << r.err;
    EXPECT_TRUE(r.exited(120)) << describe(r) << "\n" << r.err;
    const Report report = parse_report(r.err);
    ASSERT_TRUE(report.ok) << report.error << "\n" << r.err;
    EXPECT_EQ(report.exit_status, std::optional<int>(0));
    EXPECT_EQ(test::lines(report.after),
              std::vector<std::string>{
                  "leakcheck: never matched: --hook no_such_allocator, -O libnosuchthing (nothing was hooked for them)"});
}

TEST(UnmatchedWhenLaunching, TheProgramsOwnFailureStatusWins) {
    const RunResult r = leakcheck_with({"--hook", "no_such_allocator=malloc", "--", fixture("exit_code")});
    ASSERT_FALSE(r.timed_out) << r.err;
    EXPECT_TRUE(r.exited(7)) << describe(r) << "\n" << r.err;
    const Report report = parse_report(r.err);
    ASSERT_TRUE(report.ok) << report.error << "\n" << r.err;
    EXPECT_EQ(test::lines(report.after),
              std::vector<std::string>{"leakcheck: never matched: --hook no_such_allocator (nothing was hooked for them)"});
}

TEST(UnmatchedWhenLaunching, AHookMatchedInALibraryLoadedLaterIsNotReported) {
    // dlopener loads libm at run time (and then finds no lib_leak in it); a --hook on one of
    // libm's functions matches once it is loaded.
    const std::string libm = "/lib/x86_64-linux-gnu/libm.so.6";
    ASSERT_TRUE(std::filesystem::exists(libm));
    const RunResult r = leakcheck_with({"--hook", "cos=free", "--", fixture("dlopener"), libm});
    ASSERT_FALSE(r.timed_out) << r.err;
    const Report report = parse_report(r.err);
    ASSERT_TRUE(report.ok) << report.error << "\n" << r.err;
    EXPECT_EQ(report.after.find("never matched"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace leakcheck::e2e
