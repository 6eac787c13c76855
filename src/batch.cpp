// Batch policies over a Session. In launch mode leakcheck shares the terminal's process group
// with the program, so Ctrl-C reaches the program directly and leakcheck only notes it; a
// signal sent to leakcheck alone (kill) is passed on. In attach mode any of SIGINT, SIGTERM,
// SIGHUP or SIGQUIT ends the watch: detach, final report, exit 0.
#include "leakcheck/batch.hpp"

#include <signal.h>

#include <algorithm>
#include <ctime>
#include <fstream>

#include "leakcheck/error.hpp"
#include "leakcheck/log.hpp"
#include "leakcheck/signals.hpp"

namespace leakcheck {
namespace {

std::uint64_t seconds_to_ns(double s) { return static_cast<std::uint64_t>(s * 1e9); }

std::string process_name(pid_t pid) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    return name;
}

// "leakcheck: process 1235 (name, forked from 1234) exited with status 3": heads each report
// when forks are followed, so a reader can tell whose it is.
std::string process_heading(const TracedProcess& p, const std::string& state) {
    std::string s = "leakcheck: process " + std::to_string(p.pid) + " (" + p.name;
    if (p.parent != 0) s += ", forked from " + std::to_string(p.parent);
    return s + ")" + (state.empty() ? "" : " " + state) + "\n";
}

std::string end_state(const ProcessEnd& end) {
    if (end.signaled)
        return "terminated by signal " + signal_name(end.signal) + (end.core_dumped ? " (core dumped)" : "");
    return "exited with status " + std::to_string(end.exit_code);
}

// A followed child that has ended: its report now, then its ledger is dropped.
void report_ended_children(Session& session, const BatchOptions& batch) {
    while (std::unique_ptr<TracedProcess> child = session.take_ended_child()) {
        log_stream() << process_heading(*child, end_state(child->end));
        if (child->end.signaled) log_stream() << session.describe_crash(*child, batch.report.max_frames);
        ReportOptions options = batch.report;
        options.now_ns = now_ns();
        options.pid = child->pid;
        session.write_process_report(log_stream(), *child, options, nullptr, batch.json);
    }
}

// -v: what the tracing of the first process cost: stops, stack captures, waits.
void report_stats(const Session& session) {
    if (!verbose()) return;
    if (const TracerStats* st = session.stats())
        debug("stops " + std::to_string(st->stops) + ", entries " + std::to_string(st->entry_hits) +
              ", returns " + std::to_string(st->return_hits) + ", nested " + std::to_string(st->nested_calls) +
              ", memory reads " + std::to_string(session.memory_reads()) + ", returns passed " +
              std::to_string(st->passed_returns));
    if (const Unwinder::Stats* u = session.unwind_stats())
        debug("stacks " + std::to_string(u->captures) + " (" + std::to_string(u->slow_captures) + " by libunwind), " +
              std::to_string(u->frames) + " frames, " + std::to_string(u->reads) + " stack reads, " +
              std::to_string(u->rules) + " frame rules compiled");
    const WaitPolicy::Stats& w = session.wait_policy().stats();
    debug("waits " + std::to_string(w.waits) + ": " + std::to_string(w.caught_polling) + " caught polling, " +
          std::to_string(w.polled_then_slept) + " polled in vain (" + std::to_string(w.polled_ns / 1000000) +
          " ms), " + (session.wait_policy().is_adaptive() ? "adaptive" : "fixed") + " polling");
}

// Each periodic report also samples every stack's outstanding bytes, so a stack that grows
// report after report is marked and, with --sort growth, shown first.
void periodic_report(Session& session, const BatchOptions& batch, GrowthTracker& growth) {
    if (batch.scan) session.scan_leaks();  // the program is resumed by the next run()
    growth.record(session.ledger());
    ReportOptions options = batch.report;
    options.timestamp = std::time(nullptr);
    options.now_ns = now_ns();
    if (!batch.session.follow_forks) {
        session.write_report(log_stream(), options, &growth, batch.json);
        return;
    }
    // Growth is tracked for the first process only: children come and go between reports.
    for (const auto& p : session.processes()) {
        if (!p->alive()) continue;
        if (!batch.json) log_stream() << process_heading(*p, "");
        options.pid = p->pid;
        session.write_process_report(log_stream(), *p, options, p.get() == session.processes().front().get() ? &growth : nullptr,
                                     batch.json);
    }
}

void final_report(Session& session, const BatchOptions& batch, const GrowthTracker& growth) {
    ReportOptions options = batch.report;
    options.now_ns = now_ns();
    if (batch.session.follow_forks) options.pid = session.pid();
    session.write_report(log_stream(), options, growth.records() ? &growth : nullptr, batch.json);
}

BatchResult run_launched(const BatchOptions& options) {
    Session session(options.session);
    GrowthTracker growth;
    session.launch(options.command);
    const std::uint64_t interval = seconds_to_ns(options.interval_s);
    std::uint64_t next = interval ? now_ns() + interval : 0;
    for (;;) {
        int sig = 0;
        const RunEnd why = session.run(next, &sig);
        report_ended_children(session, options);
        if (why == RunEnd::kExited) break;
        if (why == RunEnd::kDeadline) {
            periodic_report(session, options, growth);
            next += interval;
        } else if (why == RunEnd::kSignal &&
                   (sig == SIGTERM || sig == SIGHUP || last_signal_sent_by_process())) {
            // Sent to leakcheck alone: pass it on. Ctrl-C and Ctrl-\ from the terminal reached
            // the program by themselves (same process group).
            if (sig != SIGPIPE) ::kill(session.pid(), sig);
        }
    }
    const ProcessEnd& end = session.end();
    if (options.session.follow_forks && !session.processes().empty()) {
        log_stream() << process_heading(*session.processes().front(), end_state(end));
        log_stream() << session.describe_crash(options.report.max_frames);
    } else if (end.signaled) {
        log_stream() << "leakcheck: program terminated by signal " << signal_name(end.signal)
                     << (end.core_dumped ? " (core dumped)" : "") << '\n';
        log_stream() << session.describe_crash(options.report.max_frames);
    } else {
        log_stream() << "leakcheck: program exited with status " << end.exit_code << '\n';
    }
    final_report(session, options, growth);
    report_stats(session);
    return end.signaled ? BatchResult{128 + end.signal, end.signal} : BatchResult{end.exit_code, 0};
}

BatchResult run_attached(const BatchOptions& options) {
    Session session(options.session);
    GrowthTracker growth;
    const std::string name = process_name(options.pid);
    session.attach(options.pid);
    log_stream() << "leakcheck: attached to process " << options.pid << " (" << name
                 << "); Ctrl-C to detach\n";
    const double interval_s = options.interval_s > 0 ? options.interval_s : (options.duration_s > 0 ? 0 : 5);
    const std::uint64_t interval = seconds_to_ns(interval_s);
    const std::uint64_t start = now_ns();
    const std::uint64_t stop_at = options.duration_s > 0 ? start + seconds_to_ns(options.duration_s) : 0;
    std::uint64_t next_report = interval ? start + interval : 0;
    unsigned reports = 0;
    bool last_was_report = false;
    for (;;) {
        std::uint64_t deadline = next_report;
        if (stop_at && (!deadline || stop_at < deadline)) deadline = stop_at;
        int sig = 0;
        const RunEnd why = session.run(deadline, &sig);
        report_ended_children(session, options);
        if (why == RunEnd::kChildEnded) continue;
        if (why == RunEnd::kExited) {
            const ProcessEnd& end = session.end();
            log_stream() << "leakcheck: process " << options.pid
                         << (end.signaled ? " was terminated by signal " + signal_name(end.signal)
                                          : " exited with status " + std::to_string(end.exit_code))
                         << '\n';
            final_report(session, options, growth);
            report_stats(session);
            return {};
        }
        if (why == RunEnd::kSignal) break;
        const std::uint64_t now = now_ns();
        if (next_report && now >= next_report) {
            periodic_report(session, options, growth);
            last_was_report = true;
            ++reports;
            next_report += interval;
            if (options.count && reports >= options.count) break;
        }
        if (stop_at && now >= stop_at) {
            last_was_report = false;
            break;
        }
    }
    if (options.scan && !last_was_report) session.scan_leaks();  // before the detach lets it run
    session.detach();
    log_stream() << "leakcheck: detached from process " << options.pid << '\n';
    if (!last_was_report) final_report(session, options, growth);
    report_stats(session);
    return {};
}

}  // namespace

BatchResult run_batch(const BatchOptions& options) {
    return options.pid ? run_attached(options) : run_launched(options);
}

}  // namespace leakcheck
