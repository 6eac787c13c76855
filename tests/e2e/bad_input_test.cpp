// What leakcheck does with a program it cannot trace, or a command line it cannot use: exactly
// one line on stderr starting "leakcheck:", the documented exit status (127 not found, 126 not
// executable, 120 no allocator, 2 usage), nothing on stdout, no hang, and no process left
// behind (leakcheck's process group is empty after it exits, and nothing runs with the test's
// own temporary path on its command line).
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "leakcheck_run.hpp"

namespace leakcheck::e2e {
namespace {

using namespace std::chrono_literals;

constexpr auto kTimeout = 20s;

::testing::AssertionResult one_leakcheck_line(const std::string& err) {
    const std::vector<std::string> ls = test::lines(err);
    if (ls.size() != 1 || err.back() != '\n')
        return ::testing::AssertionFailure() << "expected exactly one line on stderr, got " << ls.size()
                                             << ":\n" << err;
    if (ls[0].rfind("leakcheck: ", 0) != 0)
        return ::testing::AssertionFailure() << "the line does not start with \"leakcheck: \": " << ls[0];
    return ::testing::AssertionSuccess();
}

void expect_clean_failure(const WatchedRun& w, int code) {
    ASSERT_FALSE(w.timed_out) << "leakcheck hung; stderr so far:\n" << w.err;
    EXPECT_TRUE(w.exited(code)) << "wait status " << w.wait_status << ", stderr:\n" << w.err;
    EXPECT_TRUE(one_leakcheck_line(w.err));
    EXPECT_EQ(w.out, "");
    EXPECT_TRUE(w.leftovers.empty()) << w.leftovers.size() << " process(es) left behind";
}

std::vector<std::string> leakcheck_on(const std::vector<std::string>& command) {
    std::vector<std::string> argv{leakcheck_bin(), "--"};
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
}

// The leftover check itself: a shell that leaves a sleep behind is caught.
TEST(BadInput, LeftoverCheckSeesABackgroundChild) {
    TempDir dir;
    const std::string script = dir.write("leave-one.sh", "#!/bin/sh\nsleep 30 &\necho started\n", 0755);
    const WatchedRun w = run_watched({script}, "", kTimeout, dir.path());
    ASSERT_FALSE(w.timed_out);
    EXPECT_TRUE(w.exited(0));
    EXPECT_EQ(w.out, "started\n");
    EXPECT_FALSE(w.leftovers.empty());
}

TEST(BadInput, NonexistentProgramPath) {
    TempDir dir;
    const std::string missing = dir.file("no-such-program");
    const WatchedRun w = run_watched(leakcheck_on({missing, "arg"}), "", kTimeout, dir.path());
    expect_clean_failure(w, 127);
    EXPECT_NE(w.err.find(missing), std::string::npos) << w.err;
}

TEST(BadInput, CommandNotFoundInPath) {
    const std::string name = "leakcheck-e2e-no-such-command-4f1c";
    const WatchedRun w = run_watched(leakcheck_on({name}), "", kTimeout, name);
    expect_clean_failure(w, 127);
    EXPECT_NE(w.err.find(name), std::string::npos) << w.err;
}

TEST(BadInput, FileWithoutExecutePermission) {
    TempDir dir;
    const std::string script = dir.write("not-executable.sh", "#!/bin/sh\necho ran\n", 0644);
    const WatchedRun w = run_watched(leakcheck_on({script}), "", kTimeout, dir.path());
    expect_clean_failure(w, 126);
    EXPECT_NE(w.err.find(script), std::string::npos) << w.err;
}

TEST(BadInput, Directory) {
    TempDir dir;
    const WatchedRun w = run_watched(leakcheck_on({dir.path()}), "", kTimeout, dir.path());
    expect_clean_failure(w, 126);
    EXPECT_NE(w.err.find(dir.path()), std::string::npos) << w.err;
}

// A static binary without a symbol table: leakcheck cannot find malloc, says so, and kills
// the program before it runs any of its own code (it would print "ran").
TEST(BadInput, StaticStrippedBinaryHasNoAllocator) {
    const std::string cc = find_program({"/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"});
    if (cc.empty()) GTEST_SKIP() << "no C compiler (cc) to build a static binary with";
    TempDir dir;
    const std::string src = dir.write("static_prog.c",
                                      "#include <stdio.h>\n#include <stdlib.h>\n"
                                      "int main(void) { char *p = malloc(10); puts(\"ran\"); return p ? 3 : 4; }\n");
    const std::string exe = dir.file("static_prog");
    const test::RunResult build = test::run_process({cc, "-static", "-s", "-O1", "-o", exe, src}, [] {
        test::RunOptions o;
        o.timeout = 60s;
        return o;
    }());
    if (!build.exited(0) || !is_executable(exe))
        GTEST_SKIP() << "cannot link a static binary here (no libc.a?): " << build.err;

    const test::RunResult native = test::run_process({exe});
    ASSERT_TRUE(native.exited(3));
    ASSERT_EQ(native.out, "ran\n");

    const WatchedRun w = run_watched(leakcheck_on({exe}), "", kTimeout, dir.path());
    expect_clean_failure(w, 120);
    EXPECT_NE(w.err.find("no allocator"), std::string::npos) << w.err;
}

struct UsageCase {
    const char* name;
    std::vector<std::string> args;
};

void PrintTo(const UsageCase& c, std::ostream* os) { *os << c.name; }

class BadUsage : public ::testing::TestWithParam<UsageCase> {};

TEST_P(BadUsage, OneLineAndStatusTwo) {
    std::vector<std::string> argv{leakcheck_bin()};
    argv.insert(argv.end(), GetParam().args.begin(), GetParam().args.end());
    const WatchedRun w = run_watched(argv, "", kTimeout);
    expect_clean_failure(w, 2);
}

INSTANTIATE_TEST_SUITE_P(
    CommandLines, BadUsage,
    ::testing::Values(UsageCase{"NoProgramAtAll", {}}, UsageCase{"OnlyTheSeparator", {"--"}},
                      UsageCase{"UnknownOption", {"--no-such-option", "--", "/bin/true"}},
                      UsageCase{"TopZero", {"-T", "0", "--", "/bin/true"}},
                      UsageCase{"MaxFramesZero", {"--max-frames", "0", "--", "/bin/true"}},
                      UsageCase{"LogFileInMissingDirectory",
                                {"--log-file", "/nonexistent-leakcheck-e2e-dir/report.txt", "--", "/bin/true"}}),
    [](const ::testing::TestParamInfo<UsageCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace leakcheck::e2e
