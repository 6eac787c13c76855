// The traced process: launching it under ptrace, its threads, waiting for their stops and
// resuming them. Knows nothing of breakpoints or allocators; the Tracer gives stops meaning.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "leakcheck/arch.hpp"
#include "leakcheck/remote_memory.hpp"
#include "leakcheck/stop_router.hpp"
#include "leakcheck/types.hpp"

namespace leakcheck {

// One wait status, decoded.
struct Stop {
    enum class Kind {
        kSignal,     // signal-delivery-stop (SIGTRAP included: ours or the program's)
        kGroupStop,  // the thread entered a group-stop (SIGSTOP, SIGTSTP...): PTRACE_LISTEN
        kEvent,      // a PTRACE_EVENT_* stop; see event
        kExited,     // the thread/process exited; see exit_code
        kKilled,     // killed by a signal; see signal
    };
    Kind kind = Kind::kSignal;
    Tid tid = 0;
    int signal = 0;
    int event = 0;  // PTRACE_EVENT_CLONE, _EXEC, _EXIT, _FORK, _VFORK, _STOP
    int exit_code = 0;
    bool core_dumped = false;
};

struct LaunchOptions {
    std::vector<std::string> argv;  // argv[0] is looked up in PATH when it has no '/'
    std::vector<std::string> env;   // NAME=VALUE set in the program's environment only
};

class Target {
public:
    // Starts the program stopped at its exec (before its dynamic linker runs any code).
    // Throws Error with kNotFound / kNotExecutable for a program that cannot be run.
    static std::unique_ptr<Target> launch(const LaunchOptions& options);
    // Seizes every thread of a running process and stops them all. Throws Error with
    // kNoSuchProcess, kPermission, kAlreadyTraced or kUsage (itself, its parent).
    static std::unique_ptr<Target> attach(pid_t pid);
    // A child the kernel attached to us when `parent` forked (its first stop already taken):
    // traced like its parent, waited for through the same router.
    static std::unique_ptr<Target> adopt(pid_t child, const Target& parent);
    ~Target();
    Target(const Target&) = delete;
    Target& operator=(const Target&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] bool alive() const noexcept { return alive_; }
    // Launched by us (killed if leakcheck fails early) or attached (only ever detached).
    [[nodiscard]] bool launched() const noexcept { return launched_; }
    [[nodiscard]] RemoteMemory& memory() noexcept { return *memory_; }
    [[nodiscard]] const std::unordered_set<Tid>& threads() const noexcept { return threads_; }

    // Blocks until some traced thread stops (polling first as the router's WaitPolicy says).
    // Returns false when interrupted by a signal to leakcheck (EINTR), so the caller can look
    // at its flags.
    bool wait(Stop& stop);
    // Pins the target's threads and leakcheck to one CPU (what the CPU a tracer and its tracee
    // share saves is the cross-CPU wake-up of every stop); undo_pinning() restores each
    // thread's own affinity. Only on request: it changes what the program observes.
    void pin_to_one_cpu();
    void undo_pinning() noexcept;
    // Waits for a stop of one thread only.
    bool wait_thread(Tid tid, Stop& stop);
    // Takes a wait status of one of our threads that the router read (see StopRouter).
    Stop accept(Tid tid, int status) noexcept { return decode(tid, status); }
    // From now on, waits share `router` with the other traced processes (-f).
    void use_router(StopRouter& router);
    [[nodiscard]] StopRouter& router() noexcept { return *router_; }

    // Resumes with a signal to deliver (0: the oldest deferred one, if any). False if the
    // thread is gone.
    bool resume(Tid tid, int signal = 0) noexcept;
    bool listen(Tid tid) noexcept;  // leave a group-stop to the kernel (SEIZE semantics)
    // Asks a running thread to stop (PTRACE_INTERRUPT; SIGSTOP on legacy kernels).
    bool interrupt(Tid tid) noexcept;
    // A signal that arrived while leakcheck had the thread busy; delivered at its next resume.
    void defer_signal(Tid tid, int signal) { deferred_[tid].push_back(signal); }
    [[nodiscard]] bool seized() const noexcept { return seized_; }
    bool get_regs(Tid tid, arch::Registers& regs) noexcept;
    bool set_regs(Tid tid, const arch::Registers& regs) noexcept;
    bool set_pc(Tid tid, RemoteAddr pc) noexcept;  // one word, cheaper than set_regs
    unsigned long event_message(Tid tid) noexcept;

    // True while the thread sits in a ptrace-stop we have not resumed it from.
    [[nodiscard]] bool is_stopped(Tid tid) const noexcept { return stopped_.count(tid) != 0; }

    void add_thread(Tid tid) { threads_.insert(tid); }
    void remove_thread(Tid tid) { threads_.erase(tid); }
    // The process is gone (the last thread exited or was killed): nothing more to wait for.
    void mark_dead() noexcept { alive_ = false; }
    // A fresh image after exec: reopen memory (the old mm is gone).
    void reopen_memory();

    // Detaches every thread (each must be in a ptrace-stop), delivering no signal.
    void detach_all() noexcept;
    // SIGKILL the process and reap it (and every other tracee: call send_kill() on the
    // others first, or this waits for them).
    void kill() noexcept;
    // SIGKILL only; the process counts as gone (kill() on another Target reaps it).
    void send_kill() noexcept;

private:
    Target(pid_t pid, bool launched);
    void seize_thread(Tid tid);
    void wait_attached(Tid tid);
    Stop decode(Tid tid, int status) noexcept;

    pid_t pid_;
    bool alive_ = true;
    bool launched_ = true;
    bool seized_ = true;
    std::unique_ptr<RemoteMemory> memory_;
    std::unique_ptr<StopRouter> own_router_;
    StopRouter* router_ = nullptr;
    std::unordered_set<Tid> threads_;
    std::unordered_set<Tid> stopped_;
    std::unordered_map<Tid, std::vector<int>> deferred_;
    bool pinned_ = false;
    std::unordered_map<Tid, std::vector<unsigned char>> saved_affinity_;  // cpu_set_t bytes
    std::vector<unsigned char> own_affinity_;
};

}  // namespace leakcheck
