// The command line's way of running a session: launch a program and report when it ends, or
// attach to one, report every interval and detach at the end (memleak's usage).
#pragma once

#include <string>
#include <vector>

#include "leakcheck/report.hpp"
#include "leakcheck/session.hpp"

namespace leakcheck {

struct BatchOptions {
    std::vector<std::string> command;  // launch mode
    pid_t pid = 0;                     // attach mode
    double interval_s = 0;             // periodic reports; 0 = none (attach: 5 unless --duration)
    unsigned count = 0;                // attach: detach after this many reports; 0 = no limit
    double duration_s = 0;             // attach: detach after this long; 0 = no limit
    ReportOptions report;
    SessionOptions session;
    bool json = false;                 // reports as JSON lines instead of text
    bool scan = false;                 // attach: a reachability scan with every report
};

// How leakcheck itself should end: with this status, or by dying of this signal.
struct BatchResult {
    int exit_code = 0;
    int signal = 0;
};

BatchResult run_batch(const BatchOptions& options);

}  // namespace leakcheck
