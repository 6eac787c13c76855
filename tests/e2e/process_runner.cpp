// run_process for end-to-end tests: posix_spawn into a new process group, then one poll loop
// that feeds stdin, drains stdout and stderr (so neither pipe can fill and stall the child)
// and watches the deadline.
#include "process_runner.hpp"

// GCC 12 warns -Wmaybe-uninitialized inside libstdc++'s <regex> when sanitizers are on (a
// false positive in its std::function moves); this keeps LEAKCHECK_SANITIZE builds clean.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <regex>
#include <stdexcept>
#include <system_error>
#include <utility>

extern char** environ;

namespace leakcheck::test {
namespace {

using Clock = std::chrono::steady_clock;

// How long to keep reading after a timeout kill: anything outside the process group that still
// holds the pipes must not hang the test.
constexpr std::chrono::milliseconds kDrainAfterKill{2'000};

[[noreturn]] void fail(int error, const std::string& what) {
    throw std::system_error(error, std::generic_category(), what);
}

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    ~Fd() { reset(); }
    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool open() const noexcept { return fd_ >= 0; }
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

struct Pipe {
    Fd read;
    Fd write;
};

Pipe make_pipe() {
    int fds[2];
    // Close-on-exec, so children spawned by other threads meanwhile don't keep our ends open
    // (the spawn's dup2 onto 0/1/2 clears the flag on the child's copies).
    if (::pipe2(fds, O_CLOEXEC) != 0) fail(errno, "pipe2");
    return Pipe{Fd(fds[0]), Fd(fds[1])};
}

void set_nonblocking(int fd) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) fail(errno, "fcntl");
}

std::vector<std::string> child_environment(const std::vector<std::pair<std::string, std::string>>& extra) {
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string entry(*e);
        const std::string name = entry.substr(0, entry.find('='));
        const bool overridden = std::any_of(extra.begin(), extra.end(),
                                            [&](const auto& kv) { return kv.first == name; });
        if (!overridden) env.push_back(entry);
    }
    for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
    return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (std::string& s : strings) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

// One read per wake-up, so a program that writes without pause cannot keep the loop from
// its deadline; closes the fd at end of file or on error.
void drain(Fd& fd, std::string& into) {
    std::array<char, 65536> buf;
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n > 0)
        into.append(buf.data(), static_cast<std::size_t>(n));
    else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
        fd.reset();
}

class Spawn {
public:
    Spawn() {
        posix_spawn_file_actions_init(&actions_);
        posix_spawnattr_init(&attr_);
    }
    ~Spawn() {
        posix_spawn_file_actions_destroy(&actions_);
        posix_spawnattr_destroy(&attr_);
    }
    Spawn(const Spawn&) = delete;
    Spawn& operator=(const Spawn&) = delete;
    posix_spawn_file_actions_t actions_;
    posix_spawnattr_t attr_;
};

}  // namespace

RunResult run_process(const std::vector<std::string>& argv, const RunOptions& opts) {
    if (argv.empty()) throw std::invalid_argument("run_process: empty argv");

    Pipe out = make_pipe();
    Pipe err = make_pipe();
    Pipe in;
    if (opts.stdin_text) in = make_pipe();

    Spawn spawn;
    int rc = 0;
    if (opts.stdin_text)
        rc |= posix_spawn_file_actions_adddup2(&spawn.actions_, in.read.get(), STDIN_FILENO);
    else
        rc |= posix_spawn_file_actions_addopen(&spawn.actions_, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    rc |= posix_spawn_file_actions_adddup2(&spawn.actions_, out.write.get(), STDOUT_FILENO);
    rc |= posix_spawn_file_actions_adddup2(&spawn.actions_, err.write.get(), STDERR_FILENO);
    if (!opts.cwd.empty()) rc |= posix_spawn_file_actions_addchdir_np(&spawn.actions_, opts.cwd.c_str());

    // Own process group, so a timeout kills the program and everything it started; signals
    // this test process ignores or blocks (SIGPIPE, say) back to their defaults.
    sigset_t none;
    sigemptyset(&none);
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    rc |= posix_spawnattr_setflags(&spawn.attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                     POSIX_SPAWN_SETSIGDEF);
    rc |= posix_spawnattr_setpgroup(&spawn.attr_, 0);
    rc |= posix_spawnattr_setsigmask(&spawn.attr_, &none);
    rc |= posix_spawnattr_setsigdefault(&spawn.attr_, &all);
    if (rc != 0) fail(ENOMEM, "posix_spawn setup");

    std::vector<std::string> args(argv);
    std::vector<char*> c_args = c_strings(args);
    std::vector<std::string> env = child_environment(opts.env);
    std::vector<char*> c_env = c_strings(env);

    const Clock::time_point start = Clock::now();
    pid_t pid = -1;
    rc = ::posix_spawnp(&pid, c_args[0], &spawn.actions_, &spawn.attr_, c_args.data(), c_env.data());
    if (rc != 0) fail(rc, "cannot run " + argv[0]);

    out.write.reset();
    err.write.reset();
    in.read.reset();
    set_nonblocking(out.read.get());
    set_nonblocking(err.read.get());

    // A child that exits without reading its stdin makes our write raise SIGPIPE, which would
    // kill the test binary: block it on this thread and take EPIPE instead.
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigset_t old_mask;
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
    bool got_epipe = false;

    std::size_t written = 0;
    if (in.write.open()) {
        set_nonblocking(in.write.get());
        if (opts.stdin_text->empty()) in.write.reset();
    }

    // A pidfd becomes readable when the child exits, so the loop sleeps in poll instead of
    // polling waitpid; kernels without pidfd_open (< 5.3) fall back to short sleeps.
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

    RunResult result;
    bool exited = false;  // exited but not reaped: the zombie keeps the pid and group id ours
    Clock::time_point deadline = start + opts.timeout;
    for (;;) {
        if (!exited) {
            siginfo_t info{};
            const int w = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
            if ((w == 0 && info.si_pid == pid) || (w != 0 && errno == ECHILD)) {
                exited = true;
                pidfd.reset();
            }
        }
        if (exited && !out.read.open() && !err.read.open()) break;

        const Clock::time_point now = Clock::now();
        if (now >= deadline) {
            if (result.timed_out) break;
            result.timed_out = true;
            ::kill(-pid, SIGKILL);
            deadline = now + kDrainAfterKill;
            continue;
        }

        std::vector<pollfd> fds;
        if (out.read.open()) fds.push_back({out.read.get(), POLLIN, 0});
        if (err.read.open()) fds.push_back({err.read.get(), POLLIN, 0});
        if (in.write.open()) fds.push_back({in.write.get(), POLLOUT, 0});
        if (pidfd.open()) fds.push_back({pidfd.get(), POLLIN, 0});
        auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
        if (!exited && !pidfd.open()) wait = std::min(wait, std::chrono::milliseconds(10));
        const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
        if (ready < 0 && errno != EINTR) fail(errno, "poll");
        if (ready <= 0) continue;

        for (const pollfd& p : fds) {
            if (p.revents == 0) continue;
            if (p.fd == out.read.get()) {
                drain(out.read, result.out);
            } else if (p.fd == err.read.get()) {
                drain(err.read, result.err);
            } else if (p.fd == in.write.get()) {
                const std::string& text = *opts.stdin_text;
                const ssize_t n = ::write(in.write.get(), text.data() + written, text.size() - written);
                if (n > 0) written += static_cast<std::size_t>(n);
                if (n < 0 && errno == EPIPE) got_epipe = true;
                if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == text.size()) in.write.reset();
            }
        }
    }
    in.write.reset();

    if (got_epipe) {
        const timespec zero{0, 0};
        while (::sigtimedwait(&pipe_only, nullptr, &zero) == SIGPIPE) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);

    // Whatever the program left running in its group goes too; safe while the unreaped child
    // still owns the group id.
    ::kill(-pid, SIGKILL);
    int status = 0;
    pid_t reaped;
    do reaped = ::waitpid(pid, &status, 0);
    while (reaped < 0 && errno == EINTR);
    result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    if (reaped == pid) {
        if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
    }
    return result;
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t begin = 0;
    while (begin < text.size()) {
        std::size_t end = text.find('\n', begin);
        if (end == std::string::npos) end = text.size();
        std::size_t stop = end;
        if (stop > begin && text[stop - 1] == '\r') --stop;
        out.push_back(text.substr(begin, stop - begin));
        begin = end + 1;
    }
    return out;
}

bool contains_line_matching(const std::string& text, const std::string& ecmascript_regex) {
    const std::regex re(ecmascript_regex, std::regex::ECMAScript);
    const std::vector<std::string> all = lines(text);
    return std::any_of(all.begin(), all.end(), [&](const std::string& line) { return std::regex_search(line, re); });
}

}  // namespace leakcheck::test
