// Ctrl-C at a terminal: leakcheck runs sigint_wait in a pseudo-terminal that is its
// controlling terminal (stdin and stdout on the pty, the session leader being leakcheck, as a
// shell without job control would leave it), the test waits for "ready" and types the
// terminal's interrupt character. The kernel sends SIGINT to the foreground process group:
// the program dies of it, leakcheck reports that with the program's leaks and then dies of
// SIGINT itself, as the program would have without it.
//
// stderr goes to a pipe rather than the pty so that the report is not mixed with the
// terminal's echo of ^C. stdout on a pty makes glibc's stdout buffer 1024 bytes (st_blksize)
// instead of 4096.
//
// Uses posix_openpt/grantpt/unlockpt/ptsname, setsid and TIOCSCTTY, so no -lutil is needed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "leakcheck_run.hpp"

extern char** environ;

namespace leakcheck::e2e {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint64_t kStdoutBufferOnPty = 1024;

struct PtyRun {
    std::string tty_output;  // what the program and leakcheck wrote to the terminal
    std::string err;         // leakcheck's stderr (the report)
    int wait_status = 0;
    bool reaped = false;
    bool saw_ready = false;
    bool timed_out = false;
    std::string no_pty;  // why no pseudo-terminal could be had, if none
};

// What to do once the trigger text has appeared: gets the child's pid and the pty master.
using Action = std::function<void(pid_t child, int master)>;

// Types `text` at the terminal.
Action type(const std::string& text) {
    return [text](pid_t, int master) {
        if (::write(master, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
            ADD_FAILURE() << "write to the pty master: " << std::strerror(errno);
    };
}

// Runs argv with a new pty as controlling terminal, stdin and stdout; stderr on a pipe. Once
// `trigger` has appeared in the terminal output, runs `action`. Everything under a deadline;
// on timeout the whole session is killed.
PtyRun run_on_pty(const std::vector<std::string>& argv, const std::string& trigger, const Action& action,
                  std::chrono::milliseconds timeout) {
    PtyRun result;
    const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
        result.no_pty = std::string("cannot open a pseudo-terminal: ") + std::strerror(errno);
        if (master >= 0) ::close(master);
        return result;
    }
    const std::string slave_name = ::ptsname(master);
    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        ADD_FAILURE() << "pipe2: " << std::strerror(errno);
        ::close(master);
        return result;
    }

    std::vector<std::string> args(argv);
    std::vector<char*> c_args;
    for (std::string& a : args) c_args.push_back(a.data());
    c_args.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid == 0) {
        // Only async-signal-safe calls from here to exec.
        ::setsid();
        const int slave = ::open(slave_name.c_str(), O_RDWR);
        if (slave < 0) ::_exit(126);
        ::ioctl(slave, TIOCSCTTY, 0);
        ::dup2(slave, STDIN_FILENO);
        ::dup2(slave, STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        if (slave > STDERR_FILENO) ::close(slave);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        for (int sig : {SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGHUP}) ::sigaction(sig, &dfl, nullptr);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execve(c_args[0], c_args.data(), environ);
        ::_exit(127);
    }
    ::close(err_pipe[1]);
    if (pid < 0) {
        ADD_FAILURE() << "fork: " << std::strerror(errno);
        ::close(master);
        ::close(err_pipe[0]);
        return result;
    }
    ::fcntl(master, F_SETFL, O_NONBLOCK);
    ::fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);

    bool master_open = true;
    bool err_open = true;
    bool sent = false;
    const auto deadline = Clock::now() + timeout;
    std::array<char, 4096> buf;
    for (;;) {
        int status = 0;
        if (!result.reaped && ::waitpid(pid, &status, WNOHANG) == pid) {
            result.reaped = true;
            result.wait_status = status;
        }
        if (result.reaped && !err_open) break;
        if (Clock::now() >= deadline) {
            result.timed_out = true;
            break;
        }
        std::vector<pollfd> fds;
        if (master_open) fds.push_back({master, POLLIN, 0});
        if (err_open) fds.push_back({err_pipe[0], POLLIN, 0});
        ::poll(fds.data(), fds.size(), 20);
        if (master_open) {
            const ssize_t n = ::read(master, buf.data(), buf.size());
            if (n > 0) result.tty_output.append(buf.data(), static_cast<std::size_t>(n));
            // EIO: every slave descriptor is closed.
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) master_open = false;
        }
        if (err_open) {
            const ssize_t n = ::read(err_pipe[0], buf.data(), buf.size());
            if (n > 0) result.err.append(buf.data(), static_cast<std::size_t>(n));
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) err_open = false;
        }
        if (!sent && result.tty_output.find(trigger) != std::string::npos) {
            result.saw_ready = true;
            // Let the program reach its pause(); the signal would kill it anyway.
            std::this_thread::sleep_for(50ms);
            action(pid, master);
            sent = true;
        }
    }
    // The session's process group is the child's pid (setsid).
    ::kill(-pid, SIGKILL);
    if (!result.reaped) {
        int status = 0;
        if (::waitpid(pid, &status, 0) == pid && !result.timed_out) {
            result.reaped = true;
            result.wait_status = status;
        }
    }
    ::close(master);
    ::close(err_pipe[0]);
    return result;
}

// sigint_wait's report after it died of `signal_name`, with stdout on the pty.
void expect_sigint_wait_report(const PtyRun& r, int signal, const std::string& signal_name) {
    if (!r.no_pty.empty()) GTEST_SKIP() << r.no_pty;
    ASSERT_FALSE(r.timed_out) << "no end within the timeout; saw ready: " << r.saw_ready << "\nterminal:\n"
                              << r.tty_output << "\nstderr:\n" << r.err;
    ASSERT_TRUE(r.saw_ready) << "terminal:\n" << r.tty_output << "\nstderr:\n" << r.err;
    ASSERT_TRUE(r.reaped);
    EXPECT_TRUE(WIFSIGNALED(r.wait_status) && WTERMSIG(r.wait_status) == signal)
        << "leakcheck ended with wait status " << r.wait_status << ", expected death by " << signal_name
        << "\nstderr:\n" << r.err;

    const Report rep = parse_report(r.err);
    ASSERT_TRUE(rep.ok) << rep.error << "\nstderr:\n" << r.err;
    EXPECT_EQ(rep.before, "");
    EXPECT_EQ(rep.status_line, "leakcheck: program terminated by signal " + signal_name);
    EXPECT_FALSE(rep.crash.present) << "a crash stack for a signal from outside:\n" << r.err;
    ASSERT_EQ(rep.stacks.size(), 2u) << r.err;
    const Stack* own = rep.stack_with("hold", "sigint_wait.c:40");
    ASSERT_NE(own, nullptr) << r.err;
    EXPECT_EQ(own->bytes, 128u);
    EXPECT_EQ(own->blocks, 2u);
    EXPECT_EQ(own->frames.at(0).function, "hold");
    EXPECT_EQ(own->frames.at(0).file_line(), "sigint_wait.c:40");
    ASSERT_GE(own->frames.size(), 2u);
    EXPECT_EQ(own->frames[1].function, "main");
    EXPECT_EQ(own->frames[1].file_line(), "sigint_wait.c:48");
    const Stack* out = rep.stack_with("main", "sigint_wait.c:49");
    ASSERT_NE(out, nullptr) << r.err;
    EXPECT_EQ(out->bytes, kStdoutBufferOnPty);
    EXPECT_EQ(out->blocks, 1u);
    EXPECT_EQ(rep.summary.allocs, 3u);
    EXPECT_EQ(rep.summary.alloc_bytes, 128u + kStdoutBufferOnPty);
    EXPECT_EQ(rep.summary.frees, 0u);
    EXPECT_EQ(rep.summary.live_bytes, 128u + kStdoutBufferOnPty);
    EXPECT_EQ(rep.summary.live_blocks, 3u);
    // The program's "ready" reached the terminal (with the tty's \r\n).
    EXPECT_NE(r.tty_output.find("ready\r\n"), std::string::npos) << r.tty_output;
}

TEST(Terminal, CtrlCKillsTheProgramAndLeakcheckReportsItAndDiesOfSigint) {
    // A fresh pty's interrupt character (VINTR) is ^C: the kernel sends SIGINT to the
    // foreground process group, leakcheck and the program alike.
    const PtyRun r = run_on_pty({leakcheck_bin(), "--", fixture("sigint_wait")}, "ready", type("\x03"), 30s);
    expect_sigint_wait_report(r, SIGINT, "SIGINT");
}

// kill -TERM <leakcheck>: leakcheck passes SIGTERM on to the program, which dies of it; then
// the report, and leakcheck dies of SIGTERM too.
TEST(Terminal, SigtermToLeakcheckIsPassedOnToTheProgram) {
    const PtyRun r = run_on_pty({leakcheck_bin(), "--", fixture("sigint_wait")}, "ready",
                                [](pid_t leakcheck, int) { ::kill(leakcheck, SIGTERM); }, 30s);
    expect_sigint_wait_report(r, SIGTERM, "SIGTERM");
}

// The same program without leakcheck, as the reference: dies of SIGINT on ^C.
TEST(Terminal, CtrlCWithoutLeakcheckForReference) {
    const PtyRun r = run_on_pty({fixture("sigint_wait")}, "ready", type("\x03"), 30s);
    if (!r.no_pty.empty()) GTEST_SKIP() << r.no_pty;
    ASSERT_FALSE(r.timed_out) << r.tty_output;
    ASSERT_TRUE(r.reaped);
    EXPECT_TRUE(WIFSIGNALED(r.wait_status) && WTERMSIG(r.wait_status) == SIGINT) << r.wait_status;
    EXPECT_EQ(r.err, "");
}

}  // namespace
}  // namespace leakcheck::e2e
