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
#include "leakcheck/run_events.hpp"
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

// What every report of the run shares; JSON reports all carry their time and process.
ReportOptions report_options(const BatchOptions& batch, pid_t pid, bool periodic, bool last) {
    ReportOptions options = batch.report;
    options.now_ns = now_ns();
    options.pid = pid;
    // The text shows a time on periodic reports only ("[HH:MM:SS] "), as memleak does.
    if (periodic || batch.json) options.timestamp = std::time(nullptr);
    options.last_report = last;
    return options;
}

// A followed child that has ended: its report now, then its ledger is dropped.
void report_ended_children(Session& session, const BatchOptions& batch, RunEvents& events) {
    while (std::unique_ptr<TracedProcess> child = session.take_ended_child()) {
        events.ended(session, *child, child->end, EndWording::kHeading);
        session.write_process_report(log_stream(), *child, report_options(batch, child->pid, false, true), nullptr,
                                     batch.json);
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
    const LedgerTotals& t = session.ledger().totals();
    debug("ledger: " + std::to_string(t.unknown_frees) + " frees of unknown blocks, " +
          std::to_string(t.internal_frees) + " internal frees of unknown blocks, " +
          std::to_string(t.missed_releases) + " missed releases");
    const WaitPolicy::Stats& w = session.wait_policy().stats();
    debug("waits " + std::to_string(w.waits) + ": " + std::to_string(w.caught_polling) + " caught polling, " +
          std::to_string(w.polled_then_slept) + " polled in vain (" + std::to_string(w.polled_ns / 1000000) +
          " ms), " + (session.wait_policy().is_adaptive() ? "adaptive" : "fixed") + " polling");
}

// Each periodic report also samples every stack's outstanding bytes, so a stack that grows
// report after report is marked and, with --sort growth, shown first.
void periodic_report(Session& session, const BatchOptions& batch, GrowthTracker& growth, RunEvents& events,
                     bool last = false) {
    if (batch.scan) session.scan_leaks();  // the program is resumed by the next run()
    growth.record(session.ledger());
    if (!batch.session.follow_forks) {
        session.write_report(log_stream(), report_options(batch, session.pid(), true, last), &growth, batch.json);
        return;
    }
    // Growth is tracked for the first process only: children come and go between reports.
    for (const auto& p : session.processes()) {
        if (!p->alive()) continue;
        events.heading(*p);
        session.write_process_report(log_stream(), *p, report_options(batch, p->pid, true, last),
                                     p.get() == session.processes().front().get() ? &growth : nullptr, batch.json);
    }
}

// Everything seen, once the watch is over (the process ended, or leakcheck detached).
void final_report(Session& session, const BatchOptions& batch, const GrowthTracker& growth) {
    session.write_report(log_stream(), report_options(batch, session.pid(), false, true),
                         growth.records() ? &growth : nullptr, batch.json);
}

BatchResult run_launched(const BatchOptions& options) {
    Session session(options.session);
    GrowthTracker growth;
    RunEvents events(log_stream(), options.json, options.report.max_frames);
    session.launch(options.command);
    events.launched(session.pid(), options.command);
    const std::uint64_t interval = seconds_to_ns(options.interval_s);
    std::uint64_t next = interval ? now_ns() + interval : 0;
    for (;;) {
        int sig = 0;
        const RunEnd why = session.run(next, &sig);
        report_ended_children(session, options, events);
        if (why == RunEnd::kExited) break;
        if (why == RunEnd::kDeadline) {
            periodic_report(session, options, growth, events);
            next += interval;
        } else if (why == RunEnd::kSignal &&
                   (sig == SIGTERM || sig == SIGHUP || last_signal_sent_by_process())) {
            // Sent to leakcheck alone: pass it on. Ctrl-C and Ctrl-\ from the terminal reached
            // the program by themselves (same process group).
            if (sig != SIGPIPE) ::kill(session.pid(), sig);
        }
    }
    const ProcessEnd& end = session.end();
    if (!session.processes().empty())
        events.ended(session, *session.processes().front(), end,
                     options.session.follow_forks ? EndWording::kHeading : EndWording::kProgram);
    final_report(session, options, growth);
    // A library loaded late might have matched, so launch mode can only tell at the end; a
    // report that looks clean because the allocator was never hooked must not pass for one.
    const std::vector<std::string> unmatched = session.unmatched_requests();
    if (!unmatched.empty()) events.never_matched(unmatched);
    report_stats(session);
    if (end.signaled) return BatchResult{128 + end.signal, end.signal};
    if (!unmatched.empty() && end.exit_code == 0) return BatchResult{static_cast<int>(ExitCode::kNoAllocator), 0};
    return BatchResult{end.exit_code, 0};
}

// Every way the watch ends gives one last report of everything seen since the attach: the
// process exiting, a signal to leakcheck, --duration. Only COUNT ends on a periodic report,
// which is then the last one.
BatchResult run_attached(const BatchOptions& options) {
    Session session(options.session);
    GrowthTracker growth;
    RunEvents events(log_stream(), options.json, options.report.max_frames);
    const std::string name = process_name(options.pid);
    session.attach(options.pid);
    events.attached(options.pid, name);
    const double interval_s = options.interval_s > 0 ? options.interval_s : (options.duration_s > 0 ? 0 : 5);
    const std::uint64_t interval = seconds_to_ns(interval_s);
    const std::uint64_t start = now_ns();
    const std::uint64_t stop_at = options.duration_s > 0 ? start + seconds_to_ns(options.duration_s) : 0;
    std::uint64_t next_report = interval ? start + interval : 0;
    unsigned reports = 0;
    bool counted_out = false;
    for (;;) {
        std::uint64_t deadline = next_report;
        if (stop_at && (!deadline || stop_at < deadline)) deadline = stop_at;
        int sig = 0;
        const RunEnd why = session.run(deadline, &sig);
        report_ended_children(session, options, events);
        if (why == RunEnd::kChildEnded) continue;
        if (why == RunEnd::kExited) {
            events.ended(session, *session.processes().front(), session.end(), EndWording::kProcess);
            final_report(session, options, growth);
            report_stats(session);
            return {};
        }
        if (why == RunEnd::kSignal) break;
        const std::uint64_t now = now_ns();
        // A periodic report due at the end of --duration would say what the final one says.
        if (stop_at && now >= stop_at) break;
        if (next_report && now >= next_report) {
            counted_out = options.count != 0 && ++reports >= options.count;
            periodic_report(session, options, growth, events, counted_out);
            next_report += interval;
            if (counted_out) break;
        }
    }
    if (options.scan && !counted_out) session.scan_leaks();  // before the detach lets it run
    session.detach();
    events.detached(options.pid);
    if (!counted_out) final_report(session, options, growth);
    report_stats(session);
    return {};
}

}  // namespace

BatchResult run_batch(const BatchOptions& options) {
    return options.pid ? run_attached(options) : run_launched(options);
}

}  // namespace leakcheck
