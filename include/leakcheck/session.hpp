// One leak-checking session: a program launched or attached, the tracer driving its stops,
// the ledger fed by them, and the reports. The command line (batch.cpp) and the prompt are two
// front ends over these same operations.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "leakcheck/growth_tracker.hpp"
#include "leakcheck/ledger.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/report.hpp"
#include "leakcheck/symbolizer.hpp"
#include "leakcheck/target.hpp"
#include "leakcheck/tracer.hpp"

namespace leakcheck {

struct SessionOptions {
    TracerOptions tracer;
};

// Why run() returned.
enum class RunEnd {
    kExited,    // the process is gone (see end())
    kDeadline,  // the deadline passed; the program keeps running
    kSignal,    // leakcheck received a signal (returned through *signal)
};

class Session {
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

    [[nodiscard]] bool alive() const noexcept { return target_ && target_->alive(); }
    [[nodiscard]] bool attached() const noexcept { return target_ && !target_->launched(); }
    [[nodiscard]] pid_t pid() const noexcept { return target_ ? target_->pid() : 0; }
    [[nodiscard]] const ProcessEnd& end() const noexcept;
    [[nodiscard]] const TracerStats* stats() const noexcept { return tracer_ ? &tracer_->stats() : nullptr; }

    [[nodiscard]] const Ledger& ledger() const noexcept { return ledger_; }
    [[nodiscard]] const ModuleMap& modules() const noexcept { return modules_; }
    // Text (or JSON) report of what is outstanding now. `growth` marks growing stacks.
    void write_report(std::ostream& out, const ReportOptions& options, const GrowthTracker* growth = nullptr,
                      bool json = false);

private:
    SessionOptions options_;
    Ledger ledger_;
    ModuleMap modules_;
    Symbolizer symbolizer_;
    std::unique_ptr<Target> target_;
    std::unique_ptr<Tracer> tracer_;
    ProcessEnd end_;
};

// Installs leakcheck's handlers for SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE and SIGALRM:
// they only note the signal, so leakcheck survives them; a launched program gets its
// defaults back at exec.
void install_signal_handlers();
// The oldest such signal received and not yet taken, or 0.
int take_pending_signal() noexcept;

std::string signal_name(int sig);

}  // namespace leakcheck
