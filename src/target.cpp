// Launching a program under ptrace and the per-thread ptrace requests. The program is stopped
// at its exec (PTRACE_EVENT_EXEC), before ld.so or any initialiser runs, and seized (not
// TRACEME) so group-stops keep their job-control meaning through PTRACE_LISTEN.
#include "leakcheck/target.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <dirent.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "leakcheck/error.hpp"
#include "leakcheck/kernel_features.hpp"
#include "leakcheck/signals.hpp"

namespace leakcheck {
namespace {

// EXITKILL only for programs we launched: an attached process must outlive leakcheck.
constexpr long kTraceOptions = PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT |
                               PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK;

// Fields of /proc/PID/status we check before attaching.
struct ProcStatus {
    bool exists = false;
    char state = '?';
    pid_t tracer = 0;
    uid_t uid = 0;
    std::string name;
};

ProcStatus read_status(pid_t pid) {
    ProcStatus st;
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    if (!in) return st;
    st.exists = true;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("Name:", 0) == 0) st.name = line.substr(line.find_first_not_of(" \t", 5));
        else if (line.rfind("State:", 0) == 0) st.state = line[line.find_first_not_of(" \t", 6)];
        else if (line.rfind("TracerPid:", 0) == 0) st.tracer = std::atoi(line.c_str() + 10);
        else if (line.rfind("Uid:", 0) == 0) st.uid = static_cast<uid_t>(std::atoi(line.c_str() + 4));
    }
    return st;
}

pid_t read_tgid(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("Tgid:", 0) == 0) return std::atoi(line.c_str() + 5);
    return pid;
}

std::vector<Tid> list_threads(pid_t pid) {
    std::vector<Tid> tids;
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') tids.push_back(static_cast<Tid>(std::atoi(e->d_name)));
        ::closedir(d);
    }
    return tids;
}

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

Target::Target(pid_t pid, bool launched)
    : pid_(pid), launched_(launched), own_router_(std::make_unique<StopRouter>()), router_(own_router_.get()) {
    if (launched) threads_.insert(pid);
    router_->add(*this);
}

Target::~Target() {
    if (alive_) {
        if (launched_) kill();
        else detach_all();
    }
    router_->remove(*this);
}

void Target::use_router(StopRouter& router) {
    router_->remove(*this);
    router_ = &router;
    router_->add(*this);
}

std::unique_ptr<Target> Target::adopt(pid_t child, const Target& parent) {
    std::unique_ptr<Target> target(new Target(child, parent.launched_));
    target->seized_ = parent.seized_;
    target->threads_.insert(child);
    target->stopped_.insert(child);
    target->memory_ = std::make_unique<RemoteMemory>(child);
    target->use_router(*parent.router_);
    return target;
}

std::unique_ptr<Target> Target::attach(pid_t pid) {
    const std::string who = "process " + std::to_string(pid);
    if (pid <= 0) throw Error("invalid PID " + std::to_string(pid), ExitCode::kUsage);
    if (pid == ::getpid()) throw Error("cannot attach to leakcheck itself", ExitCode::kUsage);
    if (pid == ::getppid()) throw Error("cannot attach to leakcheck's own parent (" + who + ")", ExitCode::kUsage);
    const ProcStatus status = read_status(pid);
    if (!status.exists) throw Error("no such process: " + std::to_string(pid), ExitCode::kNoSuchProcess);
    if (status.state == 'Z' || status.state == 'X')
        throw Error(who + " (" + status.name + ") is a zombie: it has exited and has no memory to watch",
                    ExitCode::kNoSuchProcess);
    if (status.tracer != 0) {
        const ProcStatus tracer = read_status(status.tracer);
        throw Error(who + " (" + status.name + ") is already traced by process " + std::to_string(status.tracer) +
                        (tracer.name.empty() ? "" : " (" + tracer.name + ")") + "; only one tracer at a time",
                    ExitCode::kAlreadyTraced);
    }
    if (std::to_string(pid) != std::to_string(read_tgid(pid)))
        throw Error(std::to_string(pid) + " is a thread of process " + std::to_string(read_tgid(pid)) +
                        "; give the process ID", ExitCode::kUsage);

    std::unique_ptr<Target> target(new Target(pid, false));
    target->seized_ = kernel_features().ptrace_seize;
    // Threads may be created while we attach: repeat until a pass finds no new one. Once a
    // thread is attached, the threads it creates are attached by the kernel (TRACECLONE).
    for (bool found_new = true; found_new;) {
        found_new = false;
        for (Tid tid : list_threads(pid)) {
            if (target->threads_.count(tid)) continue;
            target->seize_thread(tid);
            found_new = true;
        }
    }
    if (target->threads_.empty()) throw Error("no such process: " + std::to_string(pid), ExitCode::kNoSuchProcess);
    for (Tid tid : std::vector<Tid>(target->threads_.begin(), target->threads_.end())) target->wait_attached(tid);
    target->memory_ = std::make_unique<RemoteMemory>(pid);
    return target;
}

void Target::seize_thread(Tid tid) {
    long options = kTraceOptions;
    long rc = -1;
    if (seized_) {
        rc = ::ptrace(PTRACE_SEIZE, tid, nullptr, options);
        if (rc != 0 && (errno == EIO || errno == EINVAL) && threads_.empty()) {
            kernel_features().ptrace_seize = false;  // before 3.4
            seized_ = false;
        } else if (rc == 0) {
            ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
        }
    }
    if (!seized_) {
        rc = ::ptrace(PTRACE_ATTACH, tid, nullptr, nullptr);
    }
    if (rc != 0) {
        const int err = errno;
        if (err == ESRCH) {
            if (tid == pid_) throw Error("no such process: " + std::to_string(pid_), ExitCode::kNoSuchProcess);
            return;  // the thread exited meanwhile
        }
        if (err == EPERM) {
            std::string hint;
            std::ifstream scope("/proc/sys/kernel/yama/ptrace_scope");
            int level = 0;
            if (scope >> level && level > 0)
                hint = " (kernel.yama.ptrace_scope is " + std::to_string(level) +
                       "; run as root or with CAP_SYS_PTRACE, or lower it)";
            else if (read_status(pid_).uid != ::getuid() && ::geteuid() != 0)
                hint = " (it belongs to another user; run as that user or as root)";
            throw Error("not permitted to trace process " + std::to_string(pid_) + hint, ExitCode::kPermission);
        }
        errno = err;
        throw Error::from_errno("cannot attach to thread " + std::to_string(tid), ExitCode::kPermission);
    }
    threads_.insert(tid);
}

// Waits for a newly attached thread's first stop. Signals that arrive first are kept for
// delivery at its next resume.
void Target::wait_attached(Tid tid) {
    for (;;) {
        Stop stop;
        if (!wait_thread(tid, stop)) continue;
        if (stop.kind == Stop::Kind::kExited || stop.kind == Stop::Kind::kKilled) {
            threads_.erase(tid);
            return;
        }
        if (!seized_) {
            // PTRACE_ATTACH stops the thread with a SIGSTOP of ours: swallow it, once.
            if (stop.kind == Stop::Kind::kSignal && stop.signal == SIGSTOP) break;
            if (stop.kind == Stop::Kind::kSignal) defer_signal(tid, stop.signal);
            ::ptrace(PTRACE_CONT, tid, nullptr, nullptr);
            continue;
        }
        if (stop.kind == Stop::Kind::kSignal) {
            // A signal-delivery-stop is a ptrace-stop too; the interrupt will follow later.
            defer_signal(tid, stop.signal);
        }
        break;
    }
    if (!seized_) ::ptrace(PTRACE_SETOPTIONS, tid, nullptr, kTraceOptions);
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
        restore_original_signal_state();
        for (const std::string& e : options.env) {
            const std::size_t eq = e.find('=');
            ::setenv(e.substr(0, eq).c_str(), eq == std::string::npos ? "" : e.c_str() + eq + 1, 1);
        }
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
    long trace_options = kTraceOptions | (kernel_features().ptrace_exitkill ? PTRACE_O_EXITKILL : 0);
    long rc = ::ptrace(PTRACE_SEIZE, child, nullptr, trace_options);
    if (rc != 0 && errno == EINVAL && (trace_options & PTRACE_O_EXITKILL)) {
        kernel_features().ptrace_exitkill = false;  // before 3.8
        trace_options &= ~PTRACE_O_EXITKILL;
        rc = ::ptrace(PTRACE_SEIZE, child, nullptr, trace_options);
    }
    if (rc != 0) {
        const Error e = Error::from_errno("ptrace(PTRACE_SEIZE)", ExitCode::kPermission);
        ::kill(child, SIGKILL);
        ::waitpid(child, &status, 0);
        ::close(err_pipe[0]);
        throw e;
    }
    std::unique_ptr<Target> target(new Target(child, true));
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
    Tid tid = 0;
    int status = 0;
    Target* owner = nullptr;
    switch (router_->next(this, tid, status, owner)) {
        case StopRouter::Result::kInterrupted:
            return false;
        case StopRouter::Result::kNoChildren:
            alive_ = false;
            stop = Stop{Stop::Kind::kExited, pid_, 0, 0, 0, false};
            return true;
        case StopRouter::Result::kStatus:
            break;
    }
    stop = decode(tid, status);
    return true;
}

bool Target::wait_thread(Tid tid, Stop& stop) {
    int status = 0;
    if (router_->next_of(tid, status) != StopRouter::Result::kStatus) {
        if (errno == EINTR) return false;
        throw Error::from_errno("waitpid(" + std::to_string(tid) + ")");
    }
    stop = decode(tid, status);
    return true;
}

bool Target::resume(Tid tid, int signal) noexcept {
    stopped_.erase(tid);
    if (signal == 0) {
        auto it = deferred_.find(tid);
        if (it != deferred_.end() && !it->second.empty()) {
            signal = it->second.front();
            it->second.erase(it->second.begin());
        }
    }
    return ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(signal))) == 0;
}

bool Target::listen(Tid tid) noexcept {
    stopped_.erase(tid);
    return ::ptrace(PTRACE_LISTEN, tid, nullptr, nullptr) == 0; }
bool Target::interrupt(Tid tid) noexcept {
    if (seized_) return ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0;
    return ::syscall(SYS_tgkill, pid_, tid, SIGSTOP) == 0;
}

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

unsigned long Target::event_message(Tid tid) noexcept {
    unsigned long msg = 0;
    ::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &msg);
    return msg;
}

void Target::detach_all() noexcept {
    undo_pinning();
    for (Tid tid : threads_) {
        int sig = 0;
        auto it = deferred_.find(tid);
        if (it != deferred_.end() && !it->second.empty()) sig = it->second.front();
        ::ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
    }
    threads_.clear();
    deferred_.clear();
    stopped_.clear();
    alive_ = false;
}

void Target::pin_to_one_cpu() {
    if (pinned_) return;
    cpu_set_t own;
    if (::sched_getaffinity(0, sizeof own, &own) != 0) return;
    own_affinity_.assign(reinterpret_cast<unsigned char*>(&own), reinterpret_cast<unsigned char*>(&own) + sizeof own);
    const int cpu = ::sched_getcpu() >= 0 ? ::sched_getcpu() : 0;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    for (Tid tid : threads_) {
        cpu_set_t theirs;
        if (::sched_getaffinity(tid, sizeof theirs, &theirs) != 0) continue;
        saved_affinity_[tid].assign(reinterpret_cast<unsigned char*>(&theirs),
                                    reinterpret_cast<unsigned char*>(&theirs) + sizeof theirs);
        ::sched_setaffinity(tid, sizeof one, &one);
    }
    ::sched_setaffinity(0, sizeof one, &one);
    pinned_ = true;
}

void Target::undo_pinning() noexcept {
    if (!pinned_) return;
    for (Tid tid : threads_) {
        // Threads created while pinned inherited the pin: give them the first thread's mask.
        auto it = saved_affinity_.find(tid);
        if (it == saved_affinity_.end()) it = saved_affinity_.find(pid_);
        if (it == saved_affinity_.end()) continue;
        ::sched_setaffinity(tid, it->second.size(), reinterpret_cast<const cpu_set_t*>(it->second.data()));
    }
    ::sched_setaffinity(0, own_affinity_.size(), reinterpret_cast<const cpu_set_t*>(own_affinity_.data()));
    pinned_ = false;
}

void Target::send_kill() noexcept {
    if (!alive_) return;
    ::kill(pid_, SIGKILL);
    alive_ = false;
}

void Target::kill() noexcept {
    if (!alive_) return;
    ::kill(pid_, SIGKILL);
    // Reap every thread. A killed tracee still reports its PTRACE_EVENT_EXIT stop and waits
    // there until resumed.
    int status = 0;
    pid_t tid;
    while ((tid = ::waitpid(-1, &status, __WALL)) > 0 || (tid < 0 && errno == EINTR)) {
        if (tid > 0 && WIFSTOPPED(status)) ::ptrace(PTRACE_CONT, tid, nullptr, nullptr);
    }
    alive_ = false;
}

}  // namespace leakcheck
