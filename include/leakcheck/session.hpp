// One leak-checking session: a program launched or attached, the tracer driving its stops,
// the ledger fed by them, and the reports. The command line (batch.cpp) and the prompt are two
// front ends over these same operations.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <ostream>
#include <string>
#include <vector>

#include "leakcheck/growth_tracker.hpp"
#include "leakcheck/ledger.hpp"
#include "leakcheck/mapping_ledger.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/report.hpp"
#include "leakcheck/scanner.hpp"
#include "leakcheck/signals.hpp"
#include "leakcheck/stop_router.hpp"
#include "leakcheck/symbolizer.hpp"
#include "leakcheck/target.hpp"
#include "leakcheck/trace_writer.hpp"
#include "leakcheck/tracer.hpp"

namespace leakcheck {

struct SessionOptions {
    TracerOptions tracer;
    // For a prompt: a SIGINT on its way to the program (Ctrl-C on the shared terminal) is not
    // delivered; it stops the program instead, as in gdb.
    bool intercept_sigint = false;
    WaitPolicy wait = WaitPolicy::adaptive();  // how the tracer waits for stops
    bool pin = false;                // see Target::pin_to_one_cpu
    // -f: forked children (and what they exec) are traced too, each with a ledger of its own.
    bool follow_forks = false;
    std::vector<std::string> env;  // NAME=VALUE for a launched program's environment
    // -t: every allocation and release written to the log as it happens (text or JSON).
    enum class Trace { kOff, kText, kJson } trace = Trace::kOff;
    // Classify the live blocks by reachability when a process ends (at its exit stop).
    bool scan_at_exit = false;
};

// Why run() returned.
enum class RunEnd {
    kExited,       // the process is gone (see end())
    kDeadline,     // the deadline passed; the program keeps running
    kSignal,       // leakcheck received a signal (returned through *signal)
    kInterrupted,  // intercept_sigint: the program was stopped by Ctrl-C (all threads stopped)
    kCaught,       // an allocation matched the catch (all threads stopped); see caught()
    kChildEnded,   // follow_forks: a traced child process ended; see take_ended_child()
};

// An allocation that matched a catch.
struct CaughtAllocation {
    AllocEvent event;
};

// Forwards events to the ledger, and notices allocations of a size being watched for.
class EventTap final : public EventSink {
public:
    EventTap(Ledger& ledger, MappingLedger& mappings) : ledger_(ledger), mappings_(mappings) {}
    StackId intern_stack(std::span<const RemoteAddr> pcs) override { return ledger_.intern_stack(pcs); }
    void on_alloc(const AllocEvent& event) override;
    void on_free(const FreeEvent& event) override;
    bool wants_free_stack(RemoteAddr addr, FreeKind kind) const override { return ledger_.wants_free_stack(addr, kind); }
    void on_release_undone(RemoteAddr addr) override { ledger_.on_release_undone(addr); }
    void on_resize(const ResizeEvent& event) override;
    // Each event also goes to `trace` (nullptr: none).
    void set_trace(TraceWriter* trace) noexcept { trace_ = trace; }
    void on_map(const MapEvent& event) override { mappings_.on_map(event); }
    void on_unmap(const UnmapEvent& event) override { mappings_.on_unmap(event); }
    void on_exec() override { ledger_.on_exec(); }

    // Watch for allocations with min <= size <= max; nullopt to stop watching.
    void set_catch(std::optional<std::pair<std::uint64_t, std::uint64_t>> range) { range_ = range; }
    [[nodiscard]] const std::optional<std::pair<std::uint64_t, std::uint64_t>>& catch_range() const { return range_; }
    // The first match since the last take.
    std::optional<AllocEvent> take_caught() { return std::exchange(caught_, std::nullopt); }
    [[nodiscard]] bool has_caught() const noexcept { return caught_.has_value(); }

private:
    Ledger& ledger_;
    MappingLedger& mappings_;
    std::optional<std::pair<std::uint64_t, std::uint64_t>> range_;
    std::optional<AllocEvent> caught_;
    TraceWriter* trace_ = nullptr;
};

// One traced process: the one launched or attached to, or (follow_forks) a child of it.
struct TracedProcess {
    pid_t pid = 0;
    pid_t parent = 0;  // 0 for the process leakcheck launched or attached to
    std::string name;  // its executable's file name (the new one after an exec)
    Ledger ledger;
    MappingLedger mappings;
    EventTap tap{ledger, mappings};
    ModuleMap modules;
    std::unique_ptr<TraceWriter> trace;  // -t
    std::unique_ptr<Target> target;
    std::unique_ptr<Tracer> tracer;
    ProcessEnd end;  // a copy of the tracer's, once it has ended
    std::optional<LeakScan> leaks;  // the latest reachability scan, shown with its reports

    [[nodiscard]] bool alive() const noexcept { return target && target->alive(); }
};

class Session final : private ForkFollower {
public:
    explicit Session(SessionOptions options);
    ~Session();  // an attached process is detached, a launched one killed if still traced
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Starts the program, stopped before its first instruction with the hooks ready to go in.
    void launch(const std::vector<std::string>& command);
    // Attaches to a running process and hooks its allocator; its threads are left running.
    void attach(pid_t pid);

    // Lets the program run until it ends, `deadline_ns` (CLOCK_MONOTONIC; 0 = none) passes,
    // or leakcheck receives a signal.
    RunEnd run(std::uint64_t deadline_ns, int* signal);
    // Stops every thread (for a prompt), and lets them go again.
    void stop();
    void resume();
    // Leaves the process running untraced, every byte of code restored.
    void detach();
    void kill();

    // The process launched or attached to (followed children are not counted).
    [[nodiscard]] bool alive() const noexcept { return root_ && root_->alive(); }
    [[nodiscard]] bool attached() const noexcept { return root_ && root_->target && !root_->target->launched(); }
    [[nodiscard]] pid_t pid() const noexcept { return root_ ? root_->pid : 0; }
    [[nodiscard]] const ProcessEnd& end() const noexcept;
    [[nodiscard]] const WaitPolicy& wait_policy() const noexcept { return router_.wait_policy(); }
    // Reads of the first process's memory so far (0 when none is traced).
    [[nodiscard]] std::uint64_t memory_reads() const noexcept {
        return root_ && root_->target ? root_->target->memory().reads() : 0;
    }
    [[nodiscard]] const Unwinder::Stats* unwind_stats() const noexcept {
        return root_ && root_->tracer ? &root_->tracer->unwind_stats() : nullptr;
    }
    // --hook and -O requests that matched nothing in the first process (see Tracer).
    [[nodiscard]] std::vector<std::string> unmatched_requests() const {
        return root_ && root_->tracer ? root_->tracer->unmatched_requests() : std::vector<std::string>{};
    }
    [[nodiscard]] const TracerStats* stats() const noexcept { return root_ && root_->tracer ? &root_->tracer->stats() : nullptr; }

    // follow_forks: the traced processes (the root first), and a child that has ended, taken
    // out of the session once its report has been written.
    [[nodiscard]] const std::vector<std::unique_ptr<TracedProcess>>& processes() const noexcept { return processes_; }
    std::unique_ptr<TracedProcess> take_ended_child();
    // A report of one process's ledger (write_report is the root's).
    void write_process_report(std::ostream& out, TracedProcess& process, const ReportOptions& options,
                              const GrowthTracker* growth = nullptr, bool json = false);
    std::string describe_crash(const TracedProcess& process, std::size_t max_frames);
    // The same stack as JSON frames (json_report.hpp's "frames"); empty when there was none.
    nlohmann::ordered_json crash_frames_json(const TracedProcess& process, std::size_t max_frames);

    // `catch alloc`: stop when an allocation of a size in [min, max] is made.
    void set_catch(std::optional<std::pair<std::uint64_t, std::uint64_t>> range) {
        catch_ = range;
        if (root_) root_->tap.set_catch(range);
    }
    [[nodiscard]] const std::optional<AllocEvent>& caught() const noexcept { return caught_; }
    // Frames of a stack, innermost first, symbolized (for a prompt's bt and info block).
    std::vector<std::string> describe_stack(StackId stack, std::size_t max_frames);
    // The same for the current stack of a stopped thread of the root process (frame 0 its pc);
    // empty when the thread is not stopped.
    std::vector<std::string> describe_thread_stack(Tid tid, std::size_t max_frames);
    // After run() returned kInterrupted: the thread that took the program's SIGINT, or 0 when
    // the program got none (a Ctrl-C meant for leakcheck alone).
    [[nodiscard]] Tid interrupted_thread() const noexcept { return interrupted_thread_; }
    [[nodiscard]] std::size_t thread_count() const noexcept { return root_ && root_->target ? root_->target->threads().size() : 0; }
    [[nodiscard]] std::vector<Tid> threads() const;
    // The crashed thread's stack, symbolized, when the program died of a fatal signal.
    std::string describe_crash(std::size_t max_frames);

    // The reachability scan of every traced process, now (their threads are left stopped);
    // its result goes with their next reports.
    void scan_leaks();
    // The root process's reachability now (its threads are left stopped), not kept for the
    // reports; and that scan's section of a report (leak_report.hpp), for a prompt.
    std::optional<LeakScan> scan_now();
    void write_leaks(std::ostream& out, const LeakScan& scan, const ReportOptions& options);

    [[nodiscard]] const Ledger& ledger() const noexcept { return root_->ledger; }
    [[nodiscard]] const MappingLedger& mappings() const noexcept { return root_->mappings; }
    [[nodiscard]] const ModuleMap& modules() const noexcept { return root_->modules; }
    // Text (or JSON) report of what is outstanding now. `growth` marks growing stacks.
    void write_report(std::ostream& out, const ReportOptions& options, const GrowthTracker* growth = nullptr,
                      bool json = false);

private:
    void adopt_fork(Tracer& parent, Tid parent_tid, pid_t child) override;
    void adopt_exec(Tracer& parent, pid_t child) override;
    TracedProcess& add_process(pid_t pid, pid_t parent);
    void scan_process(TracedProcess& process, const Tracer::ExitState* exit = nullptr) noexcept;
    void arm_exit_scan(TracedProcess& process);
    TracedProcess* process_of(const Target* target) noexcept;
    [[nodiscard]] bool any_alive() const noexcept;
    void stop_all();
    void resume_all();

    SessionOptions options_;
    StopRouter router_;
    std::vector<std::unique_ptr<TracedProcess>> processes_;
    TracedProcess* root_ = nullptr;
    std::optional<std::pair<std::uint64_t, std::uint64_t>> catch_;
    std::optional<AllocEvent> caught_;
    Symbolizer symbolizer_;
    ProcessEnd root_end_;
    Tid interrupted_thread_ = 0;
};

std::string signal_name(int sig);

}  // namespace leakcheck
