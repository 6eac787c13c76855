// Launching a program under ptrace and the per-thread ptrace requests. The program is stopped
// at its exec (PTRACE_EVENT_EXEC), before ld.so or any initialiser runs, and seized (not
// TRACEME) so group-stops keep their job-control meaning through PTRACE_LISTEN.
#include "leakcheck/target.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "leakcheck/error.hpp"

namespace leakcheck {
namespace {

constexpr long kTraceOptions = PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT |
                               PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_EXITKILL;

// execvp's lookup, done before forking so a missing program is a clear error, not a child
// that exits 127 under the tracer.
std::string resolve_program(const std::string& name) {
    auto check = [](const std::string& path) -> int {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) return errno;
        if (S_ISDIR(st.st_mode)) return EISDIR;
        if (::access(path.c_str(), X_OK) != 0) return errno;
        return 0;
    };
    if (name.empty()) throw Error("no program given", ExitCode::kUsage);
    if (name.find('/') != std::string::npos) {
        const int err = check(name);
        if (err == ENOENT || err == ENOTDIR)
            throw Error(name + ": no such file or directory", ExitCode::kNotFound);
        if (err != 0)
            throw Error(name + ": cannot execute: " + std::strerror(err), ExitCode::kNotExecutable);
        return name;
    }
    const char* env_path = ::getenv("PATH");
    const std::string search = env_path ? env_path : "/usr/local/bin:/usr/bin:/bin";
    int first_error = ENOENT;
    std::size_t begin = 0;
    while (begin <= search.size()) {
        std::size_t end = search.find(':', begin);
        if (end == std::string::npos) end = search.size();
        std::string dir = search.substr(begin, end - begin);
        if (dir.empty()) dir = ".";
        const std::string candidate = dir + "/" + name;
        const int err = check(candidate);
        if (err == 0) return candidate;
        if (err != ENOENT && err != ENOTDIR && first_error == ENOENT) first_error = err;
        begin = end + 1;
    }
    if (first_error == ENOENT) throw Error(name + ": command not found", ExitCode::kNotFound);
    throw Error(name + ": cannot execute: " + std::strerror(first_error), ExitCode::kNotExecutable);
}

}  // namespace

Target::Target(pid_t pid) : pid_(pid) { threads_.insert(pid); }

Target::~Target() {
    if (alive_) kill();
}

std::unique_ptr<Target> Target::launch(const LaunchOptions& options) {
    if (options.argv.empty()) throw Error("no program given", ExitCode::kUsage);
    const std::string path = resolve_program(options.argv[0]);

    std::vector<char*> argv;
    for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);

    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw Error::from_errno("pipe2");

    const pid_t child = ::fork();
    if (child < 0) throw Error::from_errno("fork");
    if (child == 0) {
        ::close(err_pipe[0]);
        // Wait here until the parent has seized us, so the exec itself is traced.
        ::raise(SIGSTOP);
        ::execv(path.c_str(), argv.data());
        const int e = errno;
        [[maybe_unused]] ssize_t n = ::write(err_pipe[1], &e, sizeof e);
        ::_exit(127);
    }
    ::close(err_pipe[1]);

    int status = 0;
    if (::waitpid(child, &status, WUNTRACED) != child || !WIFSTOPPED(status)) {
        ::close(err_pipe[0]);
        throw Error("the program did not start", ExitCode::kInternal);
    }
    if (::ptrace(PTRACE_SEIZE, child, nullptr, kTraceOptions) != 0) {
        const Error e = Error::from_errno("ptrace(PTRACE_SEIZE)", ExitCode::kPermission);
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
        ::close(err_pipe[0]);
        throw e;
    }
    std::unique_ptr<Target> target(new Target(child));
    ::kill(child, SIGCONT);

    // Run the child up to its exec; swallow the job-control noise of our own SIGSTOP/SIGCONT.
    for (;;) {
        Stop stop;
        if (!target->wait_thread(child, stop)) continue;
        if (stop.kind == Stop::Kind::kExited || stop.kind == Stop::Kind::kKilled) {
            target->alive_ = false;
            int exec_errno = 0;
            const bool got = ::read(err_pipe[0], &exec_errno, sizeof exec_errno) == sizeof exec_errno;
            ::close(err_pipe[0]);
            if (got && (exec_errno == ENOENT || exec_errno == ENOTDIR))
                throw Error(options.argv[0] + ": cannot execute: " + std::strerror(exec_errno), ExitCode::kNotFound);
            throw Error(options.argv[0] + ": cannot execute: " +
                            (got ? std::strerror(exec_errno) : "exec failed"),
                        ExitCode::kNotExecutable);
        }
        if (stop.kind == Stop::Kind::kEvent && stop.event == PTRACE_EVENT_EXEC) break;
        if (stop.kind == Stop::Kind::kGroupStop) {
            target->resume(child);  // our own SIGSTOP's group-stop; SIGCONT is already pending
            continue;
        }
        target->resume(child);  // SIGCONT delivery or the seize stop: nothing for the program
    }
    ::close(err_pipe[0]);
    target->memory_ = std::make_unique<RemoteMemory>(child);
    return target;
}

void Target::reopen_memory() { memory_ = std::make_unique<RemoteMemory>(pid_); }

Stop Target::decode(Tid tid, int status) noexcept {
    Stop stop;
    stop.tid = tid;
    if (WIFSTOPPED(status)) stopped_.insert(tid);
    else stopped_.erase(tid);
    if (WIFEXITED(status)) {
        stop.kind = Stop::Kind::kExited;
        stop.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        stop.kind = Stop::Kind::kKilled;
        stop.signal = WTERMSIG(status);
        stop.core_dumped = WCOREDUMP(status);
    } else if (WIFSTOPPED(status)) {
        stop.signal = WSTOPSIG(status);
        stop.event = status >> 16;
        if (stop.event == PTRACE_EVENT_STOP &&
            (stop.signal == SIGSTOP || stop.signal == SIGTSTP || stop.signal == SIGTTIN ||
             stop.signal == SIGTTOU))
            stop.kind = Stop::Kind::kGroupStop;
        else if (stop.event != 0)
            stop.kind = Stop::Kind::kEvent;
        else
            stop.kind = Stop::Kind::kSignal;
    }
    return stop;
}

bool Target::wait(Stop& stop) {
    int status = 0;
    const pid_t tid = ::waitpid(-1, &status, __WALL);
    if (tid < 0) {
        if (errno == EINTR) return false;
        if (errno == ECHILD) {
            alive_ = false;
            stop = Stop{Stop::Kind::kExited, pid_, 0, 0, 0, false};
            return true;
        }
        throw Error::from_errno("waitpid");
    }
    stop = decode(tid, status);
    return true;
}

bool Target::wait_thread(Tid tid, Stop& stop) {
    int status = 0;
    const pid_t got = ::waitpid(tid, &status, __WALL);
    if (got < 0) {
        if (errno == EINTR) return false;
        throw Error::from_errno("waitpid(" + std::to_string(tid) + ")");
    }
    stop = decode(got, status);
    return true;
}

bool Target::resume(Tid tid, int signal) noexcept {
    stopped_.erase(tid);
    return ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(signal))) == 0;
}

bool Target::listen(Tid tid) noexcept {
    stopped_.erase(tid);
    return ::ptrace(PTRACE_LISTEN, tid, nullptr, nullptr) == 0; }
bool Target::interrupt(Tid tid) noexcept { return ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0; }

bool Target::get_regs(Tid tid, arch::Registers& regs) noexcept {
    return ::ptrace(PTRACE_GETREGS, tid, nullptr, regs.raw()) == 0;
}

bool Target::set_regs(Tid tid, const arch::Registers& regs) noexcept {
    return ::ptrace(PTRACE_SETREGS, tid, nullptr, const_cast<void*>(regs.raw())) == 0;
}

bool Target::set_pc(Tid tid, RemoteAddr pc) noexcept {
    return ::ptrace(PTRACE_POKEUSER, tid, reinterpret_cast<void*>(arch::pc_user_offset()),
                    reinterpret_cast<void*>(pc)) == 0;
}

int Target::signal_code(Tid tid) noexcept {
    siginfo_t info{};
    if (::ptrace(PTRACE_GETSIGINFO, tid, nullptr, &info) != 0) return -1;
    return info.si_code;
}

unsigned long Target::event_message(Tid tid) noexcept {
    unsigned long msg = 0;
    ::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &msg);
    return msg;
}

void Target::detach_all() noexcept {
    for (Tid tid : threads_) ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
    threads_.clear();
    stopped_.clear();
    alive_ = false;
}

void Target::kill() noexcept {
    if (!alive_) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    // Reap every thread's last stop so no zombie tracee is left behind.
    while (::waitpid(-1, &status, __WALL) > 0) {
    }
    alive_ = false;
}

}  // namespace leakcheck
