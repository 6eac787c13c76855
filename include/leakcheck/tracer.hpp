// The int3 event source: gives each ptrace stop its meaning (an allocator's entry, a call's
// return, the dynamic linker's rendezvous, a thread or process event, a signal to pass on)
// and turns allocator calls into events for an EventSink. The only module that plants code.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "leakcheck/breakpoint_site.hpp"
#include "leakcheck/events.hpp"
#include "leakcheck/hooks.hpp"
#include "leakcheck/module_images.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/scratch_space.hpp"
#include "leakcheck/target.hpp"
#include "leakcheck/unwinder.hpp"

namespace leakcheck {

struct TracerOptions {
    std::size_t max_frames = 32;
    bool intercept_sigint = false;  // swallow SIGINT meant for the program; see take_interrupt()
    bool free_stacks = false;       // unwind at every free, not only at those that are findings
    std::string allocator_object;   // -O: look for the allocator in this object first
    std::vector<std::pair<std::string, HookKind>> extra_hooks;  // --hook SYMBOL=KIND
    // --symbols-prefix: also hook P+malloc, P+free... (a prefixed jemalloc build's je_malloc),
    // in any symbol table, as custom allocators are.
    std::string symbols_prefix;
};

struct TracerStats {
    std::uint64_t stops = 0;
    std::uint64_t entry_hits = 0;
    std::uint64_t return_hits = 0;
    std::uint64_t nested_calls = 0;     // allocator calls made by allocator functions
    std::uint64_t unobserved_calls = 0; // calls whose return site could not be planted
    std::uint64_t passed_returns = 0;   // return sites reached with no call pending there
};

class Tracer;

// Takes over new processes when forks are followed (-f): the parent's Tracer announces each
// child, stopped at its first stop, and carries on with its own process.
class ForkFollower {
public:
    virtual ~ForkFollower() = default;
    // A forked child: a copy of the parent, int3s, scratch and pending calls included.
    virtual void adopt_fork(Tracer& parent, Tid parent_tid, pid_t child) = 0;
    // A vfork child (posix_spawn) at its exec stop: a new image with nothing of ours in it.
    virtual void adopt_exec(Tracer& parent, pid_t child) = 0;
};

// How the process ended, once it has.
struct ProcessEnd {
    bool ended = false;
    bool signaled = false;
    int exit_code = 0;
    int signal = 0;
    bool core_dumped = false;
    // The thread that received the fatal signal, and its stack at that moment (frame 0 is the
    // faulting instruction itself, not a return address).
    Tid crash_tid = 0;
    std::vector<RemoteAddr> crash_stack;
};

class Tracer {
public:
    Tracer(Target& target, EventSink& sink, ModuleMap& modules, const TracerOptions& options);
    // For the forked child `target` of `parent`'s process, at its first stop: the child's
    // memory holds the same sites and scratch, and its one thread the same pending calls as
    // the parent's thread `parent_tid` that forked.
    Tracer(const Tracer& parent, Tid parent_tid, Target& target, EventSink& sink, ModuleMap& modules);
    ~Tracer();
    Tracer(const Tracer&) = delete;
    Tracer& operator=(const Tracer&) = delete;

    // At the exec stop of thread `tid`: hooks the allocator now (static program) or plants the
    // dynamic linker's rendezvous so hooks go in as soon as libraries are mapped.
    void start(Tid tid);
    // For a process attached while running (all threads stopped): takes over scratch chunks of
    // an earlier attach, finds the dynamic linker's state and hooks the allocator now.
    void start_attached();
    // Handles one stop and resumes what should run. Throws Error only for leakcheck's own
    // failures (e.g. no allocator found).
    void handle(const Stop& stop);

    [[nodiscard]] const ProcessEnd& end() const noexcept { return end_; }
    [[nodiscard]] Target& target() noexcept { return target_; }
    [[nodiscard]] const TracerOptions& options() const noexcept { return options_; }
    // Forked children are handed to `follower` (nullptr: cleaned of our code and let go).
    void set_follower(ForkFollower* follower) noexcept { follower_ = follower; }
    // Once after a SIGINT for the program was intercepted (intercept_sigint): the thread that
    // took it; 0 when none was.
    Tid take_interrupt() noexcept { return std::exchange(interrupted_, 0); }
    // With every thread stopped, a Ctrl-C that the terminal sent to the program too can still
    // be pending in the process (or a thread): kDeliverable when a thread that does not block
    // SIGINT will take it as soon as it runs, kBlocked when every thread that could blocks it
    // for now (glibc blocks all signals for a while in a new thread, for one).
    enum class PendingSigint { kNone, kDeliverable, kBlocked };
    [[nodiscard]] PendingSigint pending_sigint() const;
    // The next SIGINT for the program is the copy of a Ctrl-C already answered: swallowed,
    // it does not count as an interrupt.
    void sigint_answered() noexcept { sigint_answered_ = true; }
    // The stack of a thread in a ptrace-stop, innermost first (frame 0 is its pc); empty when
    // it is not stopped or its registers cannot be read.
    std::vector<RemoteAddr> thread_stack(Tid tid);
    [[nodiscard]] const TracerStats& stats() const noexcept { return stats_; }
    [[nodiscard]] const Unwinder::Stats& unwind_stats() const noexcept { return unwinder_.stats(); }
    [[nodiscard]] const ModuleMap& modules() const noexcept { return modules_; }
    // Names of the hooked functions and the module each was found in (for -v and tests).
    [[nodiscard]] std::vector<std::string> hooked_functions() const;
    // What the options asked for that matches nothing hooked so far: "--hook SYMBOL" for a
    // symbol no module defines, "-O OBJECT" for an object with no allocator function in it.
    [[nodiscard]] std::vector<std::string> unmatched_requests() const;

    // Called once when the process ends (all threads exiting), at the exit stop while its
    // address space is still intact, with every thread in a ptrace-stop or gone: the moment
    // for the reachability scan. See tracer_exit.cpp.
    struct ExitState {
        // Registers of threads that passed their exit stop already, going with the process.
        std::unordered_map<Tid, arch::Registers> dying;
        // The thread that called the C library's exit(): its stack from the caller's frame
        // on (exit's own frames hold only stale words of frames that ended before).
        std::unordered_map<Tid, RemoteAddr> stack_from;
    };
    using ExitObserver = std::function<void(const ExitState&)>;
    void set_exit_observer(ExitObserver observer) { exit_observer_ = std::move(observer); }

    // Leaves the process running untraced: stops every thread, rewinds and swallows traps of
    // ours that are still pending, restores every byte written into code, detaches. The
    // scratch chunks stay mapped (a signal frame may return into one).
    void detach() noexcept;

    // Brings every thread to a ptrace-stop, handling (and resuming) whatever else stops first.
    void stop_all();
    // Resumes every stopped thread (a thread in a group-stop is left to the kernel).
    void resume_all();

private:
    struct HookedFunction {
        HookKind kind;
        // Other names of the same code release another family (free is also operator
        // delete): its releases are FreeKind::kAny.
        bool mixed_release = false;
        std::string symbol;
        const Module* module;
        RemoteAddr start;
        RemoteAddr end;
    };
    struct PendingCall {
        RemoteAddr return_addr;
        RemoteAddr expected_sp;  // sp once the call has returned
        std::int16_t hook;
        bool has_stack = false;  // the caller's stack was taken at the entry (else: at the return)
        StackId stack = 0;
        std::uint64_t args[4] = {};
    };
    // The allocator entries one call has reached so far: a tail call from one hooked function
    // into another (sized operator delete jumps to operator delete, which jumps to free;
    // operator new[] to operator new) reaches the next entry at the very next stop of the
    // thread, with the same frame and the same first argument, and must count once. The same
    // call instruction run again (a loop of deletes) reaches the chain's first function again:
    // a function already in the chain starts a new call.
    struct EntryChain {
        static constexpr std::size_t kMax = 6;
        std::uint64_t serial = 0;  // the thread's stop serial of the newest entry
        RemoteAddr sp = 0;
        RemoteAddr return_addr = 0;
        std::uint64_t arg0 = 0;
        std::array<RemoteAddr, kMax> sites{};
        std::size_t length = 0;
        // Records the entry of `site`; true if it continues the chain (a tail call).
        bool extend(std::uint64_t serial, RemoteAddr sp, RemoteAddr ret, std::uint64_t arg0, RemoteAddr site) noexcept;
    };
    struct ThreadState {
        std::vector<PendingCall> pending;
        std::uint64_t serial = 0;  // stops of this thread so far
        EntryChain chain;
    };

    void handle_event(const Stop& stop);
    void note_fatal_signal(Tid tid, int signal);
    bool handle_trap(Tid tid);
    void on_entry(Tid tid, ThreadState& thread, arch::Registers& regs, const BreakpointSite& site);
    void on_return(Tid tid, ThreadState& thread, arch::Registers& regs, BreakpointSite& site);
    void maybe_disarm(BreakpointSite& site);
    StackId stack_at_return(const PendingCall& call, const arch::Registers& regs);
    [[nodiscard]] std::uint64_t remote_string_size(RemoteAddr str) const;
    // The capture buffer for a stack that starts at the stopped pc (max_frames of it).
    std::span<RemoteAddr> stack_frames() noexcept { return std::span<RemoteAddr>(frames_).first(frames_.size() - 1); }
    void on_marker(ThreadState& thread, HookKind kind, Tid tid, RemoteAddr sp, RemoteAddr ret);
    void on_rendezvous(Tid tid);
    void on_exec(Tid tid);
    void on_fork(Tid parent, pid_t child, bool vfork);
    void handle_passenger(const Stop& stop);
    void refresh_modules(Tid tid);
    void resolve_hooks(Tid tid);
    void plant_hook(Tid tid, const Module& module, const std::string& symbol, HookKind kind, RemoteAddr start,
                    std::uint64_t size);
    std::vector<const Module*> lookup_order();
    bool in_hooked_function(RemoteAddr addr) const noexcept;
    void resume(Tid tid, int signal = 0);
    void plant_rendezvous(Tid tid);
    void require_allocator() const;
    // Attaching (every module is mapped already): unmatched_requests() over all modules,
    // before anything is planted; throws Error naming them.
    void require_requests_match();
    bool take_exit_stop(Tid tid);  // true: the thread's exit stop was handled (it is resumed)

    Target& target_;
    EventSink& sink_;
    ModuleMap& modules_;
    TracerOptions options_;
    ModuleImages images_;
    ScratchSpace scratch_;
    BreakpointSites sites_;
    Unwinder unwinder_;
    std::vector<HookedFunction> hooks_;          // index = BreakpointSite::hook
    std::vector<std::pair<RemoteAddr, RemoteAddr>> hooked_ranges_;  // sorted
    std::unordered_set<std::string> resolved_symbols_;
    std::unordered_map<Tid, ThreadState> threads_;
    std::unordered_map<Tid, Stop> early_stops_;  // stops of tids not yet announced by an event
    std::unordered_set<pid_t> vfork_children_;    // share our memory until they exec or exit
    std::unordered_map<Tid, int> interrupts_owed_;  // interrupts asked for and not yet seen
    std::unordered_set<Tid> group_stopped_;        // parked in a group-stop: resume with LISTEN
    std::unordered_set<Tid> initial_sigstop_;      // legacy: new threads owing ptrace's SIGSTOP
    std::unordered_set<RemoteAddr> unrelocatable_;
    RemoteAddr r_debug_ = 0;                      // the dynamic linker's struct r_debug
    bool dynamic_ = false;
    bool initial_load_done_ = false;
    // What --hook and -O matched at some time of the run (an exec does not forget them).
    bool allocator_object_matched_ = false;
    bool prefix_matched_ = false;
    std::unordered_set<std::string> matched_hooks_;
    std::uint64_t page_size_ = 4096;
    std::vector<RemoteAddr> frames_;              // scratch buffer for captures
    ProcessEnd end_;
    ForkFollower* follower_ = nullptr;
    Tid interrupted_ = 0;  // see take_interrupt()
    bool sigint_answered_ = false;
    TracerStats stats_;
    // The exit scan (tracer_exit.cpp).
    ExitObserver exit_observer_;
    ExitState exit_state_;
    RemoteAddr exit_function_start_ = 0;  // the C library's exit(), once looked up
    RemoteAddr exit_function_end_ = 0;
    bool exit_function_known_ = false;
    RemoteAddr caller_of_exit_sp(Tid tid);
    bool collecting_exits_ = false;  // stopping every thread at the group leader's exit stop
    bool leader_exited_ = false;
    bool exit_observed_ = false;
    std::unordered_set<Tid> parked_exits_;  // threads held at their exit stop meanwhile
};

}  // namespace leakcheck
