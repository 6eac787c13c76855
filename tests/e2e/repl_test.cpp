// The prompt (leakcheck -i) end to end: the real binary driven through pipes (commands on
// stdin, all at once or one at a time as its answers come) and through a pseudo-terminal
// (line editing, Ctrl-C that stops the program instead of killing it, completion, history,
// questions before killing), against the fixture programs and their ground truths.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "process_runner.hpp"

extern char** environ;

namespace leakcheck::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kLeakcheck = LEAKCHECK_BIN;
std::string fixture(const std::string& name) { return std::string(FIXTURE_DIR) + "/" + name; }

// ---------------------------------------------------------------------------------------------
// A prompt under test: leakcheck in its own process group (pipes) or session (pty), its output
// collected as it comes, expectations matched in order.

class Prompt {
public:
    enum class Mode { kPipe, kPty };

    Prompt(Mode mode, const std::vector<std::string>& argv,
           const std::vector<std::pair<std::string, std::string>>& env = {})
        : mode_(mode) {
        std::vector<std::string> args = argv;
        std::vector<char*> cargv;
        for (std::string& a : args) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        std::vector<std::string> envs;
        for (char** e = environ; *e; ++e) {
            const std::string entry(*e);
            const std::string name = entry.substr(0, entry.find('='));
            bool overridden = false;
            for (const auto& kv : env) overridden |= kv.first == name;
            if (!overridden) envs.push_back(entry);
        }
        for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
        std::vector<char*> cenv;
        for (std::string& e : envs) cenv.push_back(e.data());
        cenv.push_back(nullptr);

        int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
        std::string slave;
        if (mode == Mode::kPipe) {
            if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC))
                throw std::system_error(errno, std::generic_category(), "pipe2");
        } else {
            master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
            if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0)
                throw std::system_error(errno, std::generic_category(), "posix_openpt");
            slave = ::ptsname(master_);
            winsize ws{};
            ws.ws_row = 50;
            ws.ws_col = 250;  // wide: no line of ours wraps
            ::ioctl(master_, TIOCSWINSZ, &ws);
        }
        pid_ = ::fork();
        if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
        if (pid_ == 0) {
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGCHLD}) ::signal(sig, SIG_DFL);
            if (mode == Mode::kPipe) {
                ::setpgid(0, 0);
                ::dup2(in[0], 0);
                ::dup2(out[1], 1);
                ::dup2(err[1], 2);
            } else {
                // A session of its own whose controlling terminal is the pty: Ctrl-C typed
                // there signals its foreground process group, as at a real terminal.
                ::setsid();
                const int fd = ::open(slave.c_str(), O_RDWR);
                if (fd < 0) ::_exit(126);
                ::ioctl(fd, TIOCSCTTY, 0);
                ::dup2(fd, 0);
                ::dup2(fd, 1);
                ::dup2(fd, 2);
                if (fd > 2) ::close(fd);
            }
            ::execve(cargv[0], cargv.data(), cenv.data());
            ::_exit(127);
        }
        if (mode == Mode::kPipe) {
            ::close(in[0]);
            ::close(out[1]);
            ::close(err[1]);
            in_ = in[1];
            fds_[0] = out[0];
            fds_[1] = err[0];
        } else {
            in_ = master_;
            fds_[0] = master_;
        }
    }

    ~Prompt() {
        if (!status_) {
            ::kill(-pid_, SIGKILL);
            ::kill(pid_, SIGKILL);
            int st = 0;
            while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
        }
        if (mode_ == Mode::kPipe) {
            if (in_ >= 0) ::close(in_);
            for (int fd : fds_)
                if (fd >= 0) ::close(fd);
        } else if (master_ >= 0) {
            ::close(master_);
        }
    }

    Prompt(const Prompt&) = delete;
    Prompt& operator=(const Prompt&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    void type(const std::string& text) {
        std::size_t done = 0;
        while (done < text.size()) {
            const ssize_t n = ::write(in_, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw std::system_error(errno, std::generic_category(), "write");
            done += static_cast<std::size_t>(n);
        }
    }
    // Pipe mode: no more commands.
    void close_input() {
        if (mode_ == Mode::kPipe && in_ >= 0) {
            ::close(in_);
            in_ = -1;
        }
    }

    // Waits until the output (stdout, or the terminal) holds a match of `re` after the previous
    // match; returns its groups (group 0 the whole match), or nullopt after `timeout`.
    std::optional<std::vector<std::string>> expect(const std::string& re, std::chrono::milliseconds timeout = 20s) {
        const std::regex pattern(re);
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            std::smatch m;
            const std::string rest = out_.substr(cursor_);
            if (std::regex_search(rest, m, pattern)) {
                std::vector<std::string> groups(m.begin(), m.end());
                cursor_ += static_cast<std::size_t>(m.position(0) + m.length(0));
                return groups;
            }
            const auto now = Clock::now();
            if (now >= deadline || !pump(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)))
                return std::nullopt;
        }
    }

    // The output from the previous match up to the first match of `re`, which is consumed too.
    std::optional<std::string> text_until(const std::string& re, std::chrono::milliseconds timeout = 20s) {
        const std::size_t from = cursor_;
        const auto m = expect(re, timeout);
        if (!m) return std::nullopt;
        return out_.substr(from, cursor_ - from);
    }

    // Waits for leakcheck to exit; collects the rest of its output.
    std::optional<std::pair<int, int>> wait_exit(std::chrono::milliseconds timeout = 20s) {
        const auto deadline = Clock::now() + timeout;
        while (!status_) {
            int st = 0;
            const pid_t got = ::waitpid(pid_, &st, WNOHANG);
            if (got == pid_) {
                status_ = WIFEXITED(st) ? std::make_pair(WEXITSTATUS(st), 0) : std::make_pair(-1, WTERMSIG(st));
                break;
            }
            if (Clock::now() >= deadline) return std::nullopt;
            pump(20ms);
        }
        while (pump(50ms)) {
        }
        return status_;
    }

    [[nodiscard]] const std::string& out() const noexcept { return out_; }
    [[nodiscard]] const std::string& err() const noexcept { return err_; }

private:
    // Reads what is there within `timeout`; false once every stream is at its end.
    bool pump(std::chrono::milliseconds timeout) {
        pollfd pfds[2];
        int which[2];
        nfds_t n = 0;
        for (int i = 0; i < 2; ++i)
            if (fds_[i] >= 0 && !eof_[i]) {
                pfds[n] = pollfd{fds_[i], POLLIN, 0};
                which[n++] = i;
            }
        if (n == 0) {
            std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(20)));
            return false;
        }
        const int rc = ::poll(pfds, n, static_cast<int>(std::min<long long>(timeout.count(), 100)));
        if (rc <= 0) return true;
        for (nfds_t k = 0; k < n; ++k) {
            if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[65536];
            const ssize_t got = ::read(pfds[k].fd, buf, sizeof buf);
            if (got > 0) {
                std::string& into = which[k] == 0 ? out_ : err_;
                for (ssize_t i = 0; i < got; ++i)
                    if (buf[i] != '\r' || mode_ == Mode::kPipe) into += buf[i];  // the pty's CRs go
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                eof_[which[k]] = true;  // a pty's master reads EIO once the slave is closed
            }
        }
        return true;
    }

    Mode mode_;
    pid_t pid_ = -1;
    int master_ = -1;
    int in_ = -1;
    int fds_[2] = {-1, -1};
    bool eof_[2] = {false, false};
    std::string out_;
    std::string err_;
    std::size_t cursor_ = 0;
    std::optional<std::pair<int, int>> status_;  // exit code (or -1), signal
};

// ---------------------------------------------------------------------------------------------
// The report as `info leaks` prints it (Session::write_report's text format).

struct Stack {
    std::uint64_t bytes = 0;
    std::uint64_t blocks = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> addresses;  // addr, size
    std::vector<std::string> frames;                                  // text after "#K "
};

struct Report {
    std::vector<Stack> stacks;
    std::string summary;  // after "Summary: "
    // The first stack whose frame #0 contains `function` and `file_line`, or nullptr.
    [[nodiscard]] const Stack* with_top_frame(const std::string& function, const std::string& file_line) const {
        for (const Stack& s : stacks)
            if (!s.frames.empty() && s.frames[0].rfind(function + "+0x", 0) == 0 &&
                s.frames[0].find("(" + file_line + ")") != std::string::npos)
                return &s;
        return nullptr;
    }
};

Report parse_report(const std::string& text) {
    static const std::regex addr_re(R"(^\taddr = ([0-9a-f]+) size = (\d+)$)");
    static const std::regex stack_re(R"(^\t(\d+) bytes in (\d+) allocations? from stack$)");
    static const std::regex frame_re(R"(^\t\t#\d+ (.*)$)");
    Report report;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> addresses;
    std::istringstream in(text);
    std::string line;
    std::smatch m;
    bool in_stack = false;  // frames belong to the stack header right above them
    while (std::getline(in, line)) {
        const bool was_in_stack = std::exchange(in_stack, false);
        if (std::regex_match(line, m, addr_re)) {
            addresses.emplace_back(std::stoull(m[1], nullptr, 16), std::stoull(m[2]));
        } else if (std::regex_match(line, m, stack_re)) {
            Stack s;
            s.bytes = std::stoull(m[1]);
            s.blocks = std::stoull(m[2]);
            s.addresses = std::exchange(addresses, {});
            report.stacks.push_back(s);
            in_stack = true;
        } else if (was_in_stack && std::regex_match(line, m, frame_re)) {
            report.stacks.back().frames.push_back(m[1]);
            in_stack = true;
        } else if (line.rfind("Summary: ", 0) == 0) {
            report.summary = line.substr(9);
        }
    }
    return report;
}

std::string hex(std::uint64_t v) {
    std::ostringstream s;
    s << std::hex << v;
    return s.str();
}

char proc_state(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string all;
    std::getline(in, all);
    const std::size_t paren = all.rfind(')');
    return paren == std::string::npos || paren + 2 >= all.size() ? '?' : all[paren + 2];
}

class TempDir {
public:
    TempDir() {
        char templ[] = "/tmp/leakcheck-repl-XXXXXX";
        if (!::mkdtemp(templ)) throw std::system_error(errno, std::generic_category(), "mkdtemp");
        path_ = templ;
    }
    ~TempDir() {
        const std::string cmd = "rm -rf '" + path_ + "'";
        [[maybe_unused]] int rc = std::system(cmd.c_str());
    }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string describe(const RunResult& r) {
    if (r.timed_out) return "timed out";
    return r.term_signal ? "killed by signal " + std::to_string(r.term_signal)
                         : "exited with status " + std::to_string(r.exit_code);
}

RunResult prompt_with(const std::vector<std::string>& args, const std::string& commands) {
    std::vector<std::string> argv{kLeakcheck};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions opts;
    opts.stdin_text = commands;
    return run_process(argv, opts);
}

// The highest N of the "tick N" lines in `text` (ticker's output), 0 if there is none.
unsigned long last_tick(const std::string& text) {
    static const std::regex tick_re(R"((?:^|\n)tick (\d+)\n)");
    unsigned long last = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), tick_re); it != std::sregex_iterator(); ++it)
        last = std::max(last, std::stoul((*it)[1]));
    return last;
}

// The frames of a backtrace as the prompt prints them ("#K  function+0xOFF (file:line) [module]"):
// function, file:line (or "") and module of each.
struct Frame {
    std::string function;
    std::string file_line;
    std::string module;
};
std::vector<Frame> parse_backtrace(const std::string& text) {
    static const std::regex frame_re(R"(^#(\d+)  ([^ +]+)(?:\+0x[0-9a-f]+)?(?: \(([^)]*)\))? \[([^\]]+)\]$)");
    std::vector<Frame> frames;
    std::istringstream in(text);
    std::string line;
    std::smatch m;
    while (std::getline(in, line))
        if (std::regex_match(line, m, frame_re) && std::stoul(m[1]) == frames.size())
            frames.push_back({m[2], m[3], m[4]});
    return frames;
}

std::string module_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// ---------------------------------------------------------------------------------------------
// Through a pipe

TEST(ReplPipe, RunThenInfoLeaksReportsTheFibonacciLeak) {
    const RunResult r = prompt_with({"-i", "--", fixture("fib_leak"), "3"}, "run\ninfo leaks\nquit\n");
    ASSERT_TRUE(r.exited(0)) << r.out << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.out.find("(leakcheck)"), std::string::npos) << "no prompt without a terminal:\n" << r.out;
    EXPECT_NE(r.out.find("Starting program: " + fixture("fib_leak") + " 3\n"), std::string::npos) << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^\[Inferior 1 \(process \d+\) exited normally\]$)")) << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^fibonacci\(3\) = 2$)")) << r.out;
    const Report report = parse_report(r.out);
    const Stack* fib = report.with_top_frame("fibonacci", "fib_leak.c:41");
    ASSERT_NE(fib, nullptr) << r.out;
    EXPECT_EQ(fib->bytes, 24576U);
    EXPECT_EQ(fib->blocks, 3U);
    EXPECT_NE(r.out.find("\t24576 bytes in 3 allocations from stack\n"), std::string::npos);
    ASSERT_GE(fib->frames.size(), 2U);
    EXPECT_EQ(fib->frames[1].rfind("child+0x", 0), 0U) << fib->frames[1];
    EXPECT_NE(fib->frames[1].find("(fib_leak.c:64)"), std::string::npos) << fib->frames[1];
    // 3 x 8192 + the worker's DTV (272) + the stdout buffer on a pipe (4096).
    EXPECT_NE(report.summary.find(", 28944 bytes in 5 blocks outstanding"), std::string::npos) << report.summary;
}

TEST(ReplPipe, AbbreviatedCommandsWork) {
    const RunResult r = prompt_with({"-i", "--", fixture("fib_leak"), "2"}, "r\ni l 1\nq\n");
    ASSERT_TRUE(r.exited(0)) << r.out << r.err;
    EXPECT_NE(r.out.find("Top 1 stacks with outstanding allocations:\n"), std::string::npos) << r.out;
    const Report report = parse_report(r.out);
    ASSERT_EQ(report.stacks.size(), 1U) << r.out;
    EXPECT_EQ(report.stacks[0].bytes, 16384U);
    EXPECT_EQ(report.stacks[0].blocks, 2U);
}

TEST(ReplPipe, CatchAllocStopsAtTheAllocationAndBtShowsItsStack) {
    const RunResult r = prompt_with({"-i", "--", fixture("fib_leak"), "3"},
                                    "catch alloc 8192\nrun\nbt\ninfo threads\nkill\nquit\n");
    ASSERT_TRUE(r.exited(0)) << r.out << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_NE(r.out.find("Catchpoint set: stop at allocations of 8192 bytes.\n"), std::string::npos) << r.out;
    std::smatch m;
    const std::regex catch_re(R"(Catchpoint: allocation of 8192 bytes at 0x([0-9a-f]+) in thread (\d+) \(calloc\)\n#0  fibonacci\+0x[0-9a-f]+ \(fib_leak\.c:41\) \[[^\]]*fib_leak\]\n#1  child\+0x[0-9a-f]+ \(fib_leak\.c:64\))");
    ASSERT_TRUE(std::regex_search(r.out, m, catch_re)) << r.out;
    const std::string tid = m[2];
    // bt prints the same stack again.
    const std::string after = m.suffix();
    EXPECT_TRUE(std::regex_search(after, std::regex(R"(\n#0  fibonacci\+0x[0-9a-f]+ \(fib_leak\.c:41\))"))) << after;
    // The caught thread is the current one; the program is stopped, not finished.
    EXPECT_TRUE(std::regex_search(after, std::regex("\\* \\d+ +LWP " + tid + " \"fib_leak\""))) << after;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^\[Inferior 1 \(process \d+\) killed\]$)")) << r.out;
    EXPECT_FALSE(contains_line_matching(r.out, R"(^fibonacci\(1\))")) << "stopped before its first printf";
}

TEST(ReplPipe, InfoBlockDescribesABlockFromTheReport) {
    Prompt p(Prompt::Mode::kPipe, {kLeakcheck, "-i", "--", fixture("fib_leak"), "3"});
    p.type("set show-addresses on\nrun\ninfo leaks\n");
    const auto text = p.text_until(R"(Summary: [^\n]*\n)");
    ASSERT_TRUE(text) << p.out() << p.err();
    const Report report = parse_report(*text);
    const Stack* fib = report.with_top_frame("fibonacci", "fib_leak.c:41");
    ASSERT_NE(fib, nullptr) << *text;
    ASSERT_EQ(fib->addresses.size(), 3U) << *text;
    const auto [addr, size] = fib->addresses[1];
    EXPECT_EQ(size, 8192U);

    // As the report prints it (no 0x), then with 0x and 16 bytes inside.
    p.type("info block " + hex(addr) + "\n");
    const auto block = p.expect("Block at 0x" + hex(addr) +
                                R"(: size 8192 \(calloc\), age (\d+) ms, thread (\d+), stack (\d+)\n#0  fibonacci\+0x[0-9a-f]+ \(fib_leak\.c:41\)[^\n]*\n#1  child\+0x[0-9a-f]+ \(fib_leak\.c:64\))");
    ASSERT_TRUE(block) << p.out() << p.err();
    p.type("info block 0x" + hex(addr + 16) + "\n");
    ASSERT_TRUE(p.expect("0x" + hex(addr + 16) + " is 16 bytes into this block:\nBlock at 0x" + hex(addr) +
                         ": size 8192 "))
        << p.out();
    p.type("info block 0x1\n");
    p.type("quit\n");
    const auto status = p.wait_exit();
    ASSERT_TRUE(status);
    EXPECT_EQ(p.err(), "No live block at 0x1.\n");
    EXPECT_EQ(status->first, 1) << "quit keeps the failed command's status";
}

TEST(ReplPipe, SnapshotContinueDiffShowsTheNewBlock) {
    const RunResult r = prompt_with({"-i", "--", fixture("fib_leak"), "3"},
                                    "catch alloc 8192\nrun\nsnapshot\ncontinue\ndiff\nkill\nquit\n");
    ASSERT_TRUE(r.exited(0)) << r.out << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_TRUE(contains_line_matching(r.out, R"(^Snapshot taken: \d+ stacks?, \d+ bytes in \d+ blocks? outstanding\.$)"))
        << r.out;
    EXPECT_NE(r.out.find("Continuing.\n"), std::string::npos);
    const std::size_t diff = r.out.rfind("Continuing.\n");
    std::smatch m;
    const std::string after = r.out.substr(diff);
    // The second fibonacci call was caught; since the snapshot its stack holds one more
    // block, and that is the largest growth (the printf in between added the 4096-byte
    // stdout buffer).
    const std::regex first_change(R"(\n\+8192 bytes, \+1 block from stack \d+ \(now 16384 bytes in 2 blocks\):\n    #0  fibonacci\+0x[0-9a-f]+ \(fib_leak\.c:41\)[^\n]*\n    #1  child\+0x[0-9a-f]+ \(fib_leak\.c:64\)[^\n]*\n    #2  [^\n]+\n(\+\d+ bytes, \+\d+ blocks? from stack|Total: ))");
    ASSERT_TRUE(std::regex_search(after, m, first_change)) << after;
    // ...and it comes first: no change line before it.
    EXPECT_FALSE(contains_line_matching(m.prefix(), R"(^[+-]\d+ bytes)")) << after;
    EXPECT_TRUE(contains_line_matching(after, R"(^\+4096 bytes, \+1 block from stack \d+)")) << after;
    EXPECT_TRUE(contains_line_matching(after, R"(^Total: \+12288 bytes, \+2 blocks since the snapshot\.$)")) << after;
}

TEST(ReplPipe, ErrorsGoToStderrOneLineEachAndThePromptSurvives) {
    RunResult r = prompt_with({"-i"}, "foo\n");
    EXPECT_TRUE(r.exited(1)) << describe(r);
    EXPECT_EQ(r.err, "Undefined command: \"foo\".  Try \"help\".\n");
    EXPECT_EQ(r.out, "");

    r = prompt_with({"-i"}, "continue\n");
    EXPECT_TRUE(r.exited(1));
    EXPECT_EQ(r.err, "The program is not being run.\n");

    r = prompt_with({"-i"}, "run\n");
    EXPECT_TRUE(r.exited(1));
    EXPECT_EQ(r.err, "No executable file specified.  Use the \"file\" command.\n");

    r = prompt_with({"-i"}, "foo\ns\ninfo block zz\ninfo leaks\nset top many\nshow top\n");
    EXPECT_TRUE(r.exited(0)) << "the last command succeeded: " << describe(r);
    EXPECT_EQ(r.err,
              "Undefined command: \"foo\".  Try \"help\".\n"
              "Ambiguous command \"s\": save, set, show, snapshot.\n"
              "Invalid address: \"zz\".\n"
              "No leak data: the program has not been run.  Use \"run\" or \"attach\".\n"
              "Invalid number of stacks: \"many\".\n");
    EXPECT_EQ(r.out, "top is 10.\n");

    r = prompt_with({"-i"}, "show top\nfoo\n");
    EXPECT_TRUE(r.exited(1));
    r = prompt_with({"-i"}, "foo\nquit 3\n");
    EXPECT_TRUE(r.exited(3));
    r = prompt_with({"-i"}, "# a comment\n\nhelp\n");
    EXPECT_TRUE(r.exited(0));
    EXPECT_NE(r.out.find("info leaks [N]"), std::string::npos);
}

TEST(ReplPipe, RunWhileAliveIsRefusedWithoutATerminal) {
    const RunResult r = prompt_with({"-i", "--", fixture("fib_leak"), "3"},
                                    "catch alloc 8192\nrun\nrun\ninfo threads\nkill\ncontinue\nquit\n");
    EXPECT_TRUE(r.exited(1)) << describe(r);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"(^The program being debugged has been started already \(process (\d+)\); "kill" it first\.\nThe program is not being run\.\n$)")))
        << r.err;
    EXPECT_TRUE(contains_line_matching(r.out, "^\\[Inferior 1 \\(process " + std::string(m[1]) + "\\) killed\\]$"))
        << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, "LWP " + std::string(m[1]) + " \"fib_leak\"$")) << r.out;
}

TEST(ReplPipe, EndOfInputKillsTheProgram) {
    const RunResult r = prompt_with({"-i", "--", fixture("sigint_wait")}, "catch alloc 64\nrun\n");
    EXPECT_TRUE(r.exited(0)) << describe(r) << r.out << r.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(in thread (\d+))"))) << r.out;
    const pid_t pid = std::stoi(m[1]);
    EXPECT_EQ(proc_state(pid), '?') << "process " << pid << " outlived the prompt";
}

TEST(ReplPipe, ExitStatusesAndSignalsOfTheProgram) {
    RunResult r = prompt_with({"-i", "--", fixture("exit_code")}, "run\ninfo leaks\n");
    ASSERT_TRUE(r.exited(0)) << describe(r);
    EXPECT_TRUE(contains_line_matching(r.out, R"(^\[Inferior 1 \(process \d+\) exited with code 7\]$)")) << r.out;
    EXPECT_NE(parse_report(r.out).with_top_frame("main", "exit_code.c:25"), nullptr) << r.out;

    r = prompt_with({"-i", "--", fixture("crash")}, "run\ninfo leaks\n");
    ASSERT_TRUE(r.exited(0)) << describe(r);
    EXPECT_TRUE(contains_line_matching(r.out, R"(^\[Inferior 1 \(process \d+\) terminated by signal SIGSEGV\]$)"))
        << r.out;
    const Report report = parse_report(r.out);
    const Stack* leaky = report.with_top_frame("leaky", "crash.c:35");
    ASSERT_NE(leaky, nullptr) << r.out;
    EXPECT_EQ(leaky->bytes, 300U);
}

TEST(ReplPipe, FileRunArgsAndSettings) {
    const RunResult r = prompt_with(
        {"-i"}, "file " + fixture("fib_leak") + "\nrun 2\nshow args\nset top 1\nset max-frames 1\ninfo leaks\n"
                "info stacks\ninfo stats\nsave report " + "/dev/stdout" + "\nshow\n");
    ASSERT_TRUE(r.exited(0)) << describe(r) << r.out << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_NE(r.out.find("Starting program: " + fixture("fib_leak") + " 2\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("args is \"2\".\n"), std::string::npos);
    const Report report = parse_report(r.out);
    ASSERT_GE(report.stacks.size(), 2U) << r.out;  // info leaks, then the saved report
    EXPECT_EQ(report.stacks[0].bytes, 16384U);
    EXPECT_EQ(report.stacks[0].frames.size(), 1U) << "max-frames 1";
    EXPECT_TRUE(contains_line_matching(r.out, R"(^ +\d+ +16384 +2  fibonacci\+0x[0-9a-f]+ \(fib_leak\.c:41\))"))
        << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^Allocations: +\d+ \(\d+ bytes\)$)")) << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^Live blocks: +4$)")) << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^Live bytes: +20752$)")) << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^Stops per second: +\d+\.\d \(over \d+\.\d{3} s\)$)")) << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^Report saved to "/dev/stdout"\.$)")) << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^max-frames is 1\.$)")) << r.out;
}

TEST(ReplPipe, ARunThatFailsKeepsTheLastRunsData) {
    const RunResult r = prompt_with({"-i", "--", fixture("fib_leak"), "2"},
                                    "run\nfile no-such-program-here\nrun\ninfo stats\nshow args\n");
    ASSERT_TRUE(r.exited(0)) << describe(r) << r.out << r.err;
    EXPECT_NE(r.err.find("no-such-program-here"), std::string::npos) << r.err;
    // fib_leak 2's ledger, as FileRunArgsAndSettings reads it, not an empty one.
    EXPECT_TRUE(contains_line_matching(r.out, R"(^Live blocks: +4$)")) << r.out;
    EXPECT_TRUE(contains_line_matching(r.out, R"(^Live bytes: +20752$)")) << r.out;
    EXPECT_NE(r.out.find("args is \"2\".\n"), std::string::npos) << r.out;
}

TEST(ReplPipe, CommandsFromAFile) {
    TempDir dir;
    const std::string script = dir.path() + "/commands";
    std::ofstream(script) << "run\ninfo leaks 1\n";
    RunOptions opts;  // stdin is /dev/null: -x alone gives the commands
    RunResult r = run_process({kLeakcheck, "-x", script, "--", fixture("fib_leak"), "2"}, opts);
    ASSERT_TRUE(r.exited(0)) << describe(r) << r.out << r.err;
    EXPECT_NE(r.out.find("\t16384 bytes in 2 allocations from stack\n"), std::string::npos) << r.out;

    std::ofstream(script) << "run\nbogus\n";
    r = run_process({kLeakcheck, "-x", script, "--", fixture("fib_leak"), "1"}, opts);
    EXPECT_TRUE(r.exited(1)) << describe(r);
    EXPECT_EQ(r.err, "Undefined command: \"bogus\".  Try \"help\".\n");

    r = run_process({kLeakcheck, "-x", dir.path() + "/missing", "--", fixture("fib_leak")}, opts);
    EXPECT_TRUE(r.exited(2)) << describe(r);
    EXPECT_NE(r.err.find("missing: No such file or directory"), std::string::npos) << r.err;
}

TEST(ReplPipe, AttachWithDashP) {
    // sigint_wait waits in pause() after its leaks: attach, let it run a moment, detach.
    Prompt target(Prompt::Mode::kPipe, {fixture("sigint_wait")});
    ASSERT_TRUE(target.expect("ready\n"));
    Prompt p(Prompt::Mode::kPipe, {kLeakcheck, "-i", "-p", std::to_string(target.pid())});
    ASSERT_TRUE(p.expect("Attaching to process " + std::to_string(target.pid()) + "\nAttached; 1 thread stopped"))
        << p.out() << p.err();
    EXPECT_EQ(proc_state(target.pid()), 't');
    p.type("info threads\ndetach\ninfo leaks\nquit\n");
    const auto status = p.wait_exit();
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, std::make_pair(0, 0)) << p.out() << p.err();
    EXPECT_NE(p.out().find("[Inferior 1 (process " + std::to_string(target.pid()) + ") detached]"), std::string::npos);
    EXPECT_NE(p.out().find("No outstanding allocations."), std::string::npos) << p.out();
    EXPECT_EQ(proc_state(target.pid()), 'S') << "running untraced in pause()";
}

// After attach, what the prompt says is the attached process's: show args gives its command
// line, bt its first thread's stack where it stopped, and the next run starts its program
// with its arguments. After detach nothing of it is left as if it were still there.
TEST(ReplPipe, AttachTakesTheProcessCommandLineAndStacks) {
    Prompt target(Prompt::Mode::kPipe, {fixture("ticker"), "50"});
    ASSERT_TRUE(target.expect("tick 1\n"));
    const std::string pid = std::to_string(target.pid());
    Prompt p(Prompt::Mode::kPipe, {kLeakcheck, "-i", "--", fixture("fib_leak"), "3"});
    p.type("show args\n");
    ASSERT_TRUE(p.expect("args is \"3\".\n")) << p.out() << p.err();
    p.type("attach " + pid + "\n");
    ASSERT_TRUE(p.expect("Attached; 2 threads stopped")) << p.out() << p.err();
    p.type("show args\n");
    ASSERT_TRUE(p.expect("args is \"50\".\n")) << p.out() << p.err();
    p.type("info threads\n");
    ASSERT_TRUE(p.expect("\\* 1    LWP " + pid + " \"ticker\"\n  2    LWP \\d+ \"ticker\"\n")) << p.out();
    p.type("bt 3\n");
    p.type("show args\n");  // marks the end of bt's lines
    auto text = p.text_until("args is \"50\".\n");
    ASSERT_TRUE(text) << p.out() << p.err();
    const std::vector<Frame> frames = parse_backtrace(*text);
    ASSERT_EQ(frames.size(), 3U) << *text;
    EXPECT_EQ(frames[0].function, "raw_syscall") << *text;
    EXPECT_EQ(frames[0].file_line, "ticker.c:46") << *text;
    EXPECT_EQ(frames[1].function, "tick_forever") << *text;
    EXPECT_EQ(frames[2].function, "main") << *text;
    EXPECT_EQ(frames[2].file_line, "ticker.c:104") << *text;

    p.type("detach\n");
    ASSERT_TRUE(p.expect("\\[Inferior 1 \\(process " + pid + "\\) detached\\]\n")) << p.out();
    p.type("bt\nthread\ninfo threads\n");
    ASSERT_TRUE(p.expect("No threads.\n")) << p.out();
    // The next run starts the attached program (its executable, its arguments); its one
    // allocation is the idler's DTV.
    const std::string program = std::filesystem::canonical(fixture("ticker")).string();
    p.type("catch alloc 272\nrun\n");
    ASSERT_TRUE(p.expect("Starting program: " + program + " 50\n")) << p.out() << p.err();
    ASSERT_TRUE(p.expect(R"(Catchpoint: allocation of 272 bytes at 0x[0-9a-f]+ in thread \d+ \(calloc\))")) << p.out();
    p.type("kill\nquit\n");
    const auto status = p.wait_exit();
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, std::make_pair(0, 0)) << p.out() << p.err();
    EXPECT_EQ(p.err(), "No stack.\nNo thread selected.\n");
    // It runs on untraced (running or asleep between ticks, not stopped).
    EXPECT_EQ(slurp("/proc/" + pid + "/status").find("TracerPid:\t0\n") != std::string::npos, true);
    EXPECT_NE(proc_state(target.pid()), 't');
}

// ---------------------------------------------------------------------------------------------
// Through a pseudo-terminal

std::vector<std::pair<std::string, std::string>> terminal_env(const TempDir& home) {
    return {{"TERM", "dumb"}, {"HOME", home.path()}, {"XDG_STATE_HOME", home.path() + "/state"}};
}

TEST(ReplTerminal, CtrlCStopsTheProgramAndTheReportIsExact) {
    TempDir home;
    Prompt p(Prompt::Mode::kPty, {kLeakcheck, "-i", "--", fixture("sigint_wait")}, terminal_env(home));
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )")) << p.out();
    p.type("run\r");
    ASSERT_TRUE(p.expect("\nready\n")) << p.out();
    p.type("\x03");  // the terminal's interrupt character: SIGINT to the foreground group
    const auto stopped = p.expect(R"(Program interrupted \((\d+) threads?\)\.\n)");
    ASSERT_TRUE(stopped) << p.out();
    EXPECT_EQ((*stopped)[1], "1");

    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("info threads\r");
    const auto thread = p.expect(R"(\* 1    LWP (\d+) "sigint_wait")");
    ASSERT_TRUE(thread) << p.out();
    const pid_t pid = std::stoi((*thread)[1]);
    EXPECT_EQ(proc_state(pid), 't') << "stopped under the tracer, alive";

    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("info leaks\r");
    const auto text = p.text_until(R"(Summary: [^\n]*\n)");
    ASSERT_TRUE(text) << p.out();
    const Report report = parse_report(*text);
    const Stack* hold = report.with_top_frame("hold", "sigint_wait.c:40");
    ASSERT_NE(hold, nullptr) << *text;
    EXPECT_EQ(hold->bytes, 128U);
    EXPECT_EQ(hold->blocks, 2U);
    ASSERT_GE(hold->frames.size(), 2U);
    EXPECT_EQ(hold->frames[1].rfind("main+0x", 0), 0U) << hold->frames[1];
    EXPECT_NE(hold->frames[1].find("(sigint_wait.c:48)"), std::string::npos) << hold->frames[1];
    // Besides: libc's stdout buffer, 1024 bytes on a terminal.
    ASSERT_EQ(report.stacks.size(), 2U) << *text;
    EXPECT_EQ(report.stacks[0].bytes, 1024U);
    EXPECT_EQ(report.stacks[0].blocks, 1U);
    EXPECT_NE(report.summary.find(", 1152 bytes in 3 blocks outstanding"), std::string::npos) << report.summary;

    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("kill\r");
    ASSERT_TRUE(p.expect("\\[Inferior 1 \\(process " + std::to_string(pid) + "\\) killed\\]\n")) << p.out();
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("quit\r");
    const auto status = p.wait_exit();
    ASSERT_TRUE(status) << p.out();
    EXPECT_EQ(*status, std::make_pair(0, 0)) << p.out();
    EXPECT_EQ(p.out().find("terminated by signal SIGINT"), std::string::npos) << p.out();
    EXPECT_EQ(proc_state(pid), '?');

    // The commands typed are in the history file for the next session.
    const std::string history = slurp(home.path() + "/state/leakcheck/history");
    EXPECT_NE(history.find("info\\040leaks"), std::string::npos) << history;
    EXPECT_NE(history.find("\nkill\n"), std::string::npos) << history;
}

TEST(ReplTerminal, CtrlCAtThePromptDoesNotReachTheStoppedProgram) {
    TempDir home;
    Prompt p(Prompt::Mode::kPty, {kLeakcheck, "-i", "--", fixture("sigint_wait")}, terminal_env(home));
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("catch alloc 64\r");
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("run\r");
    ASSERT_TRUE(p.expect(R"(Catchpoint: allocation of 64 bytes at 0x[0-9a-f]+ in thread (\d+) \(malloc\)\n#0  hold\+0x[0-9a-f]+ \(sigint_wait\.c:40\))"))
        << p.out();
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("info thr\x03");  // a half-typed line, discarded
    ASSERT_TRUE(p.expect(R"(\^C\nQuit\n\(leakcheck\) )")) << p.out();
    p.type("delete\r");
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("c\r");
    // Had the first Ctrl-C reached the program, this continue would stop at once.
    ASSERT_TRUE(p.expect("Continuing.\nready\n")) << p.out();
    p.type("\x03");
    ASSERT_TRUE(p.expect(R"(Program interrupted \(1 thread\)\.\n\(leakcheck\) )")) << p.out();
    // An empty line repeats "info leaks" (not "run"-like commands).
    p.type("info leaks 1\r");
    ASSERT_TRUE(p.expect(R"(\t1024 bytes in 1 allocation from stack\n)")) << p.out();
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("\r");
    ASSERT_TRUE(p.expect(R"(\t1024 bytes in 1 allocation from stack\n)")) << "repeated:\n" << p.out();
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("quit\r");
    ASSERT_TRUE(p.expect(R"(A program is being debugged\. Kill it\? \(y or n\) )")) << p.out();
    p.type("n\r");
    ASSERT_TRUE(p.expect(R"(Not confirmed\.\n\(leakcheck\) )")) << p.out();
    p.type("quit\r");
    ASSERT_TRUE(p.expect(R"(Kill it\? \(y or n\) )")) << p.out();
    p.type("y\r");
    const auto status = p.wait_exit();
    ASSERT_TRUE(status) << p.out();
    EXPECT_EQ(*status, std::make_pair(1, 0)) << "the refused quit failed last:\n" << p.out();
}

// Ctrl-C on the terminal reaches the program too (it shares leakcheck's process group); the
// program's copy can still be pending when its threads have been stopped for leakcheck's
// own. Every continue must run the program, not report that same Ctrl-C again at once.
TEST(ReplTerminal, EveryContinueAfterCtrlCRunsTheProgram) {
    TempDir home;
    Prompt p(Prompt::Mode::kPty, {kLeakcheck, "-i", "--", fixture("ticker"), "10", "100"}, terminal_env(home));
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )")) << p.out();
    p.type("run\r");
    ASSERT_TRUE(p.expect("\ntick 1\n")) << p.out();
    unsigned long seen = 1;
    for (int round = 1; round <= 60; ++round) {
        p.type("\x03");
        const auto before = p.text_until(R"(Program interrupted \(2 threads\)\.\n\(leakcheck\) )");
        ASSERT_TRUE(before) << "round " << round << ":\n" << p.out();
        seen = std::max(seen, last_tick(*before));
        p.type("continue\r");
        ASSERT_TRUE(p.expect("Continuing.\n")) << "round " << round << ":\n" << p.out();
        // The next thing is the program's output, not another stop.
        const auto next = p.expect(R"((?:^|\n)(tick (\d+)\n|Program interrupted))");
        ASSERT_TRUE(next) << "round " << round << ":\n" << p.out();
        ASSERT_NE((*next)[1], "Program interrupted") << "round " << round << ": continue stopped at once:\n"
                                                     << p.out();
        const unsigned long now = std::stoul((*next)[2]);
        // Every tick written before the stop came before "Program interrupted": this one is new.
        EXPECT_GT(now, seen) << "round " << round << ":\n" << p.out();
        seen = now;
    }
    p.type("\x03");
    ASSERT_TRUE(p.expect(R"(Program interrupted \(2 threads\)\.\n\(leakcheck\) )")) << p.out();
    p.type("kill\r");
    ASSERT_TRUE(p.expect(R"(\[Inferior 1 \(process \d+\) killed\]\n\(leakcheck\) )")) << p.out();
    p.type("quit\r");
    const auto status = p.wait_exit();
    ASSERT_TRUE(status) << p.out();
    EXPECT_EQ(*status, std::make_pair(0, 0)) << p.out();
}

// After Ctrl-C, bt shows the stack of the thread that took the SIGINT (ticker's idler: the
// other thread blocks SIGINT), `thread N` selects another one, and the next stop selects the
// interrupted thread again.
TEST(ReplTerminal, BtAfterCtrlCShowsTheInterruptedThreadAndThreadSelectsAnother) {
    TempDir home;
    Prompt p(Prompt::Mode::kPty, {kLeakcheck, "-i", "--", fixture("ticker")}, terminal_env(home));
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )")) << p.out();
    p.type("run\r");
    ASSERT_TRUE(p.expect("\ntick 1\n")) << p.out();
    p.type("\x03");
    ASSERT_TRUE(p.expect(R"(Program interrupted \(2 threads\)\.\n\(leakcheck\) )")) << p.out();

    p.type("info threads\r");
    const auto threads = p.expect(R"(  Id   Target Id\n  1    LWP (\d+) "ticker"[^\n]*\n\* 2    LWP (\d+) "ticker"[^\n]*\n)");
    ASSERT_TRUE(threads) << p.out();
    const std::string main_tid = (*threads)[1], idler_tid = (*threads)[2];
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));

    p.type("bt\r");
    auto text = p.text_until(R"(\(leakcheck\) )");
    ASSERT_TRUE(text) << p.out();
    std::vector<Frame> frames = parse_backtrace(*text);
    ASSERT_GE(frames.size(), 3U) << *text;
    EXPECT_EQ(frames[0].function, "raw_syscall") << *text;
    EXPECT_EQ(frames[0].file_line, "ticker.c:46") << *text;
    EXPECT_EQ(module_name(frames[0].module), "ticker") << *text;
    EXPECT_EQ(frames[1].function, "idle_forever") << *text;
    EXPECT_EQ(frames[1].file_line, "ticker.c:73") << *text;
    // The thread's start is libc's (its function names depend on libc's symbols).
    EXPECT_EQ(module_name(frames[2].module), "libc.so.6") << *text;

    p.type("thread 1\r");
    ASSERT_TRUE(p.expect(R"(\[Switching to thread 1 \(LWP )" + main_tid + R"(\)\]\n#0  raw_syscall\+0x[0-9a-f]+ \(ticker\.c:46\))"))
        << p.out();
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("bt 3\r");
    text = p.text_until(R"(\(leakcheck\) )");
    ASSERT_TRUE(text) << p.out();
    frames = parse_backtrace(*text);
    ASSERT_EQ(frames.size(), 3U) << *text;
    EXPECT_EQ(frames[0].function, "raw_syscall") << *text;
    EXPECT_EQ(frames[0].file_line, "ticker.c:46") << *text;
    EXPECT_EQ(frames[1].function, "tick_forever") << *text;
    EXPECT_TRUE(frames[1].file_line == "ticker.c:63" || frames[1].file_line == "ticker.c:64") << *text;
    EXPECT_EQ(frames[2].function, "main") << *text;
    EXPECT_EQ(frames[2].file_line, "ticker.c:104") << *text;

    p.type("thread\r");
    ASSERT_TRUE(p.expect(R"(\[Current thread is 1 \(LWP )" + main_tid + R"(\)\]\n\(leakcheck\) )")) << p.out();
    p.type("info threads\r");
    ASSERT_TRUE(p.expect(R"(\* 1    LWP )" + main_tid + R"( "ticker"[^\n]*\n  2    LWP )" + idler_tid)) << p.out();
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("thread 3\r");
    ASSERT_TRUE(p.expect(R"(Invalid thread ID: 3\.\n\(leakcheck\) )")) << p.out();

    p.type("continue\r");
    ASSERT_TRUE(p.expect(R"(Continuing\.\n(?:[^\n]*\n)*?tick \d+\n)")) << p.out();
    p.type("\x03");
    ASSERT_TRUE(p.expect(R"(Program interrupted \(2 threads\)\.\n\(leakcheck\) )")) << p.out();
    p.type("bt 2\r");
    text = p.text_until(R"(\(leakcheck\) )");
    ASSERT_TRUE(text) << p.out();
    frames = parse_backtrace(*text);
    ASSERT_EQ(frames.size(), 2U) << *text;
    EXPECT_EQ(frames[0].function, "raw_syscall") << *text;
    EXPECT_EQ(frames[1].function, "idle_forever") << *text;

    p.type("kill\r");
    ASSERT_TRUE(p.expect(R"(\[Inferior 1 \(process \d+\) killed\]\n\(leakcheck\) )")) << p.out();
    p.type("bt\r");
    ASSERT_TRUE(p.expect(R"(No stack\.\n\(leakcheck\) )")) << p.out();
    p.type("quit\r");
    const auto status = p.wait_exit();
    ASSERT_TRUE(status) << p.out();
    EXPECT_EQ(*status, std::make_pair(1, 0)) << "bt failed last:\n" << p.out();
}

TEST(ReplTerminal, TabCompletesCommandsAndCtrlDQuits) {
    TempDir home;
    Prompt p(Prompt::Mode::kPty, {kLeakcheck, "-i"}, terminal_env(home));
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("inf\tstat\t\r");  // "info stats "
    ASSERT_TRUE(p.expect(R"(No leak data: the program has not been run\.)")) << p.out();
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("sho\tmax-s\t\r");  // "show max-size "
    ASSERT_TRUE(p.expect(R"(max-size is unlimited\.\n)")) << p.out();
    ASSERT_TRUE(p.expect(R"(\(leakcheck\) )"));
    p.type("\x04");  // Ctrl-D on an empty line
    ASSERT_TRUE(p.expect("quit\n")) << p.out();
    const auto status = p.wait_exit();
    ASSERT_TRUE(status) << p.out();
    EXPECT_EQ(*status, std::make_pair(0, 0)) << p.out();
}

}  // namespace
}  // namespace leakcheck::test
