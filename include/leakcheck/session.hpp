// One leak-checking session: launches the program, drives the tracer's stop loop, feeds the
// ledger and writes the reports. The command line and the prompt are front ends over this.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "leakcheck/ledger.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/report.hpp"
#include "leakcheck/symbolizer.hpp"
#include "leakcheck/tracer.hpp"

namespace leakcheck {

struct SessionOptions {
    std::vector<std::string> command;  // program and its arguments
    ReportOptions report;
    TracerOptions tracer;
};

// How leakcheck itself should end: with this exit status, or by dying of this signal.
struct SessionResult {
    int exit_code = 0;
    int signal = 0;
};

class Session {
public:
    explicit Session(SessionOptions options);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Runs the program under the tracer to its end and writes the final report.
    // Throws Error for bad input (program not found, no allocator...).
    SessionResult run_launch();

    [[nodiscard]] const Ledger& ledger() const noexcept { return ledger_; }

private:
    void write_final_report();

    SessionOptions options_;
    Ledger ledger_;
    ModuleMap modules_;
    Symbolizer symbolizer_;
};

// Installs leakcheck's handlers for SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE: they only
// set a flag, so leakcheck survives them; a launched program gets its defaults back at exec.
void install_signal_handlers();
// The last such signal received and not yet taken, or 0.
int take_pending_signal() noexcept;

}  // namespace leakcheck
