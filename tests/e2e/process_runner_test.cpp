// process_runner itself, before any end-to-end test relies on it: separate capture of stdout
// and stderr, exit status versus signal death, stdin passthrough, timeouts, env and cwd.
#include "process_runner.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <system_error>

namespace leakcheck::test {
namespace {

using namespace std::chrono_literals;

TEST(ProcessRunner, CapturesStdoutAndStderrSeparatelyAndTheExitCode) {
    const RunResult r = run_process({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "err\n");
    EXPECT_EQ(r.exit_code, 3);
    EXPECT_EQ(r.term_signal, 0);
    EXPECT_TRUE(r.exited(3));
    EXPECT_FALSE(r.timed_out);
}

TEST(ProcessRunner, ReportsDeathBySignal) {
    const RunResult r = run_process({"/bin/sh", "-c", "echo before; kill -SEGV $$"});
    EXPECT_EQ(r.out, "before\n");
    EXPECT_EQ(r.exit_code, -1);
    EXPECT_EQ(r.term_signal, SIGSEGV);
    EXPECT_FALSE(r.timed_out);
}

TEST(ProcessRunner, PassesStdinThrough) {
    RunOptions opts;
    opts.stdin_text = "line one\nline two\n";
    const RunResult r = run_process({"cat"}, opts);
    EXPECT_EQ(r.out, "line one\nline two\n");
    EXPECT_TRUE(r.exited(0));
}

TEST(ProcessRunner, LargeOutputOnBothStreamsDoesNotDeadlock) {
    // Well past a pipe's 64 KiB on both streams, interleaved, with 1 MiB of stdin too.
    RunOptions opts;
    opts.stdin_text = std::string(1 << 20, 'x');
    const RunResult r = run_process(
        {"/bin/sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; wc -c"},
        opts);
    EXPECT_TRUE(r.exited(0));
    EXPECT_EQ(lines(r.err).size(), 3000u);
    EXPECT_EQ(lines(r.out).size(), 3001u);
    EXPECT_TRUE(contains_line_matching(r.out, "^1048576$"));
}

TEST(ProcessRunner, ChildNotReadingItsStdinIsNotAnError) {
    RunOptions opts;
    opts.stdin_text = std::string(1 << 20, 'x');  // more than the pipe holds: write hits EPIPE
    const RunResult r = run_process({"/bin/sh", "-c", "exit 0"}, opts);
    EXPECT_TRUE(r.exited(0));
}

TEST(ProcessRunner, StdinIsDevNullByDefault) {
    const RunResult r = run_process({"cat"});
    EXPECT_EQ(r.out, "");
    EXPECT_TRUE(r.exited(0));
}

TEST(ProcessRunner, TimeoutKillsTheProcess) {
    RunOptions opts;
    opts.timeout = 200ms;
    const RunResult r = run_process({"sleep", "10"}, opts);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.term_signal, SIGKILL);
    EXPECT_EQ(r.exit_code, -1);
    EXPECT_GE(r.elapsed, 200ms);
    EXPECT_LT(r.elapsed, 5s);
}

TEST(ProcessRunner, TimeoutKillsTheWholeProcessGroup) {
    // The background sleep holds stdout open; only a group kill lets the run end.
    RunOptions opts;
    opts.timeout = 200ms;
    const RunResult r = run_process({"/bin/sh", "-c", "sleep 10 & sleep 10; echo unreachable"}, opts);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(r.out, "");
    EXPECT_LT(r.elapsed, 2s);
}

TEST(ProcessRunner, ExtraEnvironmentAndWorkingDirectory) {
    RunOptions opts;
    opts.env = {{"LEAKCHECK_RUNNER_TEST", "hello world"}, {"HOME", "/nonexistent-home"}};
    opts.cwd = "/tmp";
    const RunResult r = run_process({"/bin/sh", "-c", "echo \"$LEAKCHECK_RUNNER_TEST\"; echo $HOME; pwd"}, opts);
    EXPECT_EQ(lines(r.out), (std::vector<std::string>{"hello world", "/nonexistent-home", "/tmp"}));
}

TEST(ProcessRunner, MissingProgramThrows) {
    EXPECT_THROW(run_process({"/nonexistent/leakcheck-runner-test"}), std::system_error);
}

TEST(ProcessRunner, LinesAndLineMatching) {
    EXPECT_EQ(lines(""), std::vector<std::string>{});
    EXPECT_EQ(lines("a\n"), std::vector<std::string>{"a"});
    EXPECT_EQ(lines("a\r\n\nb"), (std::vector<std::string>{"a", "", "b"}));
    const std::string report = "12 allocations (98304 bytes), 7 frees\n  #0 fibonacci+0x1f (fib.c:12)\n";
    EXPECT_TRUE(contains_line_matching(report, R"(^\d+ allocations \(\d+ bytes\))"));
    EXPECT_TRUE(contains_line_matching(report, R"(fibonacci\+0x[0-9a-f]+ \(fib\.c:12\)$)"));
    EXPECT_FALSE(contains_line_matching(report, "^#0"));  // anchors are per line
    EXPECT_FALSE(contains_line_matching(report, "frees.*fibonacci"));  // no match across lines
}

}  // namespace
}  // namespace leakcheck::test
