// A program running in the background while a test acts on it: fork/exec into its own process
// group, stdout and stderr read by a thread into timestamped lines, waits for a line or for the
// exit with a timeout, and a destructor that kills the whole group and reaps the child whatever
// happened. Test-only, header-only; depends on nothing in src/.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace leakcheck::test {

struct ExitStatus {
    int code = -1;   // the exit status, -1 if killed by a signal
    int signal = 0;  // the signal that killed it, 0 if it exited
    [[nodiscard]] bool exited(int c) const noexcept { return signal == 0 && code == c; }
    [[nodiscard]] std::string describe() const {
        return signal ? "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")"
                      : "exited with status " + std::to_string(code);
    }
};

class BackgroundProcess {
public:
    using Clock = std::chrono::steady_clock;
    struct Line {
        std::string text;
        Clock::time_point at;  // when the test read it
    };
    enum class Stream { kOut, kErr };

    // argv[0] is looked up in PATH when it has no slash. Throws std::system_error when the
    // program cannot be executed.
    explicit BackgroundProcess(const std::vector<std::string>& argv) {
        if (argv.empty()) throw std::invalid_argument("BackgroundProcess: empty argv");
        std::vector<std::string> args = argv;
        std::vector<char*> cargv;
        for (std::string& a : args) cargv.push_back(a.data());
        cargv.push_back(nullptr);

        int out[2], err[2], status_pipe[2];
        if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 || ::pipe2(status_pipe, O_CLOEXEC) != 0)
            throw std::system_error(errno, std::generic_category(), "pipe2");
        const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        started_ = Clock::now();
        const pid_t pid = ::fork();
        if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
        if (pid == 0) {
            // Only async-signal-safe calls from here to exec: the test process has threads.
            ::setpgid(0, 0);
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD})
                ::signal(sig, SIG_DFL);
            ::dup2(devnull, STDIN_FILENO);
            ::dup2(out[1], STDOUT_FILENO);
            ::dup2(err[1], STDERR_FILENO);
            ::execvp(cargv[0], cargv.data());
            const int e = errno;
            [[maybe_unused]] ssize_t n = ::write(status_pipe[1], &e, sizeof e);
            ::_exit(127);
        }
        pid_ = pid;
        ::close(devnull);
        ::close(out[1]);
        ::close(err[1]);
        ::close(status_pipe[1]);
        int exec_errno = 0;
        ssize_t n;
        do n = ::read(status_pipe[0], &exec_errno, sizeof exec_errno);
        while (n < 0 && errno == EINTR);
        ::close(status_pipe[0]);
        if (n == sizeof exec_errno) {
            ::close(out[0]);
            ::close(err[0]);
            int st = 0;
            ::waitpid(pid_, &st, 0);
            pid_ = -1;
            throw std::system_error(exec_errno, std::generic_category(), "exec " + argv[0]);
        }
        fds_[0] = out[0];
        fds_[1] = err[0];
        reader_ = std::thread([this] { read_loop(); });
    }

    BackgroundProcess(const BackgroundProcess&) = delete;
    BackgroundProcess& operator=(const BackgroundProcess&) = delete;

    ~BackgroundProcess() {
        if (pid_ > 0 && !status_) {
            ::kill(-pid_, SIGKILL);
            ::kill(pid_, SIGKILL);
            int st = 0;
            while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
        }
        stop_reader_ = true;
        if (reader_.joinable()) reader_.join();
        for (int fd : fds_)
            if (fd >= 0) ::close(fd);
    }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] Clock::time_point started() const noexcept { return started_; }

    bool send(int sig) const noexcept { return !status_ && ::kill(pid_, sig) == 0; }

    // Every complete line read so far (and, once the stream is closed, a last unterminated one).
    [[nodiscard]] std::vector<Line> lines(Stream s = Stream::kOut) const {
        std::lock_guard lock(mu_);
        return lines_[index(s)];
    }
    [[nodiscard]] std::size_t line_count(Stream s = Stream::kOut) const {
        std::lock_guard lock(mu_);
        return lines_[index(s)].size();
    }
    [[nodiscard]] std::string text(Stream s = Stream::kOut) const {
        std::lock_guard lock(mu_);
        std::string all;
        for (const Line& l : lines_[index(s)]) all += l.text + "\n";
        return all + partial_[index(s)];
    }

    // Waits until some line (from the `from`-th on) matches the regex; returns its index.
    std::optional<std::size_t> wait_for_line(const std::string& ecmascript_regex, std::chrono::milliseconds timeout,
                                             Stream s = Stream::kOut, std::size_t from = 0) const {
        const std::regex re(ecmascript_regex);
        std::unique_lock lock(mu_);
        std::optional<std::size_t> found;
        cv_.wait_for(lock, timeout, [&] {
            const auto& ls = lines_[index(s)];
            for (std::size_t i = from; i < ls.size(); ++i)
                if (std::regex_search(ls[i].text, re)) {
                    found = i;
                    return true;
                }
            from = ls.size();
            return closed_[index(s)];
        });
        return found;
    }

    // Waits until the stream holds at least n lines.
    bool wait_for_lines(std::size_t n, std::chrono::milliseconds timeout, Stream s = Stream::kOut) const {
        std::unique_lock lock(mu_);
        return cv_.wait_for(lock, timeout, [&] { return lines_[index(s)].size() >= n || closed_[index(s)]; }) &&
               lines_[index(s)].size() >= n;
    }

    // Waits for the program to end, then (for up to 2 s more) for both streams to reach end of
    // file so that all output is in. nullopt on timeout (the program still runs).
    std::optional<ExitStatus> wait_exit(std::chrono::milliseconds timeout) {
        if (!status_) {
            const auto deadline = Clock::now() + timeout;
            for (;;) {
                int st = 0;
                const pid_t got = ::waitpid(pid_, &st, WNOHANG);
                if (got == pid_) {
                    ExitStatus es;
                    if (WIFEXITED(st)) es.code = WEXITSTATUS(st);
                    else if (WIFSIGNALED(st)) es.signal = WTERMSIG(st);
                    status_ = es;
                    break;
                }
                if (got < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "waitpid");
                if (Clock::now() >= deadline) return std::nullopt;
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        }
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(2), [&] { return closed_[0] && closed_[1]; });
        return status_;
    }

    [[nodiscard]] bool reaped() const noexcept { return status_.has_value(); }

private:
    static std::size_t index(Stream s) noexcept { return s == Stream::kOut ? 0 : 1; }

    void read_loop() {
        std::array<char, 65536> buf;
        while (!stop_reader_) {
            std::array<pollfd, 2> pfds{};
            nfds_t n = 0;
            std::array<int, 2> which{};
            for (int i = 0; i < 2; ++i)
                if (!closed_flag_[i]) {
                    pfds[n] = pollfd{fds_[i], POLLIN, 0};
                    which[n++] = i;
                }
            if (n == 0) break;
            const int rc = ::poll(pfds.data(), n, 50);
            if (rc <= 0) continue;
            const auto now = Clock::now();
            for (nfds_t k = 0; k < n; ++k) {
                if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                const int i = which[k];
                const ssize_t got = ::read(fds_[i], buf.data(), buf.size());
                std::lock_guard lock(mu_);
                if (got > 0) {
                    std::string& part = partial_[i];
                    part.append(buf.data(), static_cast<std::size_t>(got));
                    std::size_t start = 0, nl;
                    while ((nl = part.find('\n', start)) != std::string::npos) {
                        lines_[i].push_back(Line{part.substr(start, nl - start), now});
                        start = nl + 1;
                    }
                    part.erase(0, start);
                } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                    closed_flag_[i] = true;
                    closed_[i] = true;
                    if (!partial_[i].empty()) lines_[i].push_back(Line{std::exchange(partial_[i], {}), now});
                }
                cv_.notify_all();
            }
        }
        std::lock_guard lock(mu_);
        closed_[0] = closed_[1] = true;
        cv_.notify_all();
    }

    pid_t pid_ = -1;
    Clock::time_point started_;
    std::optional<ExitStatus> status_;
    std::array<int, 2> fds_{-1, -1};
    std::array<bool, 2> closed_flag_{false, false};  // reader thread only
    std::atomic<bool> stop_reader_{false};
    std::thread reader_;
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    std::array<std::vector<Line>, 2> lines_;
    std::array<std::string, 2> partial_;
    std::array<bool, 2> closed_{false, false};
};

}  // namespace leakcheck::test
