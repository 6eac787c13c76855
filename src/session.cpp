// Session operations over Target + Tracer + Ledger. The wait loop sleeps in waitpid; a signal
// to leakcheck (or the interval timer's SIGALRM) interrupts it, so deadlines and Ctrl-C are
// seen within one stop.
#include "leakcheck/session.hpp"

#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "leakcheck/error.hpp"
#include "leakcheck/json_report.hpp"
#include "leakcheck/leak_report.hpp"
#include "leakcheck/leak_scan.hpp"
#include "leakcheck/report_mappings.hpp"
#include "leakcheck/log.hpp"
#include "leakcheck/signals.hpp"

namespace leakcheck {
namespace {

// Arms a one-shot SIGALRM for the deadline, so a blocked waitpid returns in time.
void arm_timer(std::uint64_t deadline_ns) {
    itimerval timer{};
    if (deadline_ns != 0) {
        const std::uint64_t now = now_ns();
        const std::uint64_t left = deadline_ns > now ? deadline_ns - now : 1000;
        timer.it_value.tv_sec = static_cast<time_t>(left / 1000000000ULL);
        // Rounded up to whole microseconds, never to a full second's worth (EINVAL).
        const std::uint64_t usec = (left % 1000000000ULL + 999) / 1000;
        timer.it_value.tv_sec += static_cast<time_t>(usec / 1000000);
        timer.it_value.tv_usec = static_cast<suseconds_t>(usec % 1000000);
        if (timer.it_value.tv_sec == 0 && timer.it_value.tv_usec == 0) timer.it_value.tv_usec = 1;
    }
    setitimer(ITIMER_REAL, &timer, nullptr);
}

}  // namespace

std::string signal_name(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

void EventTap::on_alloc(const AllocEvent& event) {
    ledger_.on_alloc(event);
    if (trace_) trace_->on_alloc(event);
    if (range_ && !caught_ && event.size >= range_->first && event.size <= range_->second) caught_ = event;
}

void EventTap::on_free(const FreeEvent& event) {
    // The allocator's own releases of blocks the program never had (mimalloc's, glibc's
    // tcache at thread exit) are not the program's events: the ledger counts them apart.
    const bool shown = trace_ && (!event.internal || ledger_.find(event.addr));
    ledger_.on_free(event);
    if (shown) trace_->on_free(event);
}

void EventTap::on_resize(const ResizeEvent& event) {
    ledger_.on_resize(event);
    if (trace_) trace_->on_resize(event);
}

Session::Session(SessionOptions options) : options_(std::move(options)) {
    options_.tracer.intercept_sigint = options_.intercept_sigint;
    // A traced release names its caller: every free takes its stack.
    if (options_.trace != SessionOptions::Trace::kOff) options_.tracer.free_stacks = true;
    router_.set_wait_policy(options_.wait);
}

Session::~Session() {
    if (!any_alive()) return;
    if (attached()) detach();
    else kill();
}

TracedProcess& Session::add_process(pid_t pid, pid_t parent) {
    processes_.push_back(std::make_unique<TracedProcess>());
    TracedProcess& p = *processes_.back();
    p.pid = pid;
    p.parent = parent;
    if (options_.trace != SessionOptions::Trace::kOff) {
        p.trace = std::make_unique<TraceWriter>(log_stream(), p.modules, symbolizer_, p.ledger.stacks(),
                                                options_.trace == SessionOptions::Trace::kJson);
        p.tap.set_trace(p.trace.get());
    }
    if (!root_) {
        root_ = &p;
        p.tap.set_catch(catch_);
    }
    return p;
}

TracedProcess* Session::process_of(const Target* target) noexcept {
    for (auto& p : processes_)
        if (p->target.get() == target) return p.get();
    return nullptr;
}

bool Session::any_alive() const noexcept {
    return std::any_of(processes_.begin(), processes_.end(), [](const auto& p) { return p->alive(); });
}

namespace {

std::string file_name(const ModuleMap& modules) {
    const Module* exe = modules.main_executable();
    if (!exe) return {};
    const std::size_t slash = exe->path.rfind('/');
    return slash == std::string::npos ? exe->path : exe->path.substr(slash + 1);
}

}  // namespace

void Session::launch(const std::vector<std::string>& command) {
    TracedProcess& p = add_process(0, 0);
    p.target = Target::launch(LaunchOptions{command, options_.env});
    p.pid = p.target->pid();
    p.target->use_router(router_);
    if (options_.pin) p.target->pin_to_one_cpu();
    p.tracer = std::make_unique<Tracer>(*p.target, p.tap, p.modules, options_.tracer);
    if (options_.follow_forks) p.tracer->set_follower(this);
    arm_exit_scan(p);
    try {
        p.tracer->start(p.pid);
    } catch (const Error&) {
        p.target->kill();  // it has run none of its own code yet
        throw;
    }
    p.name = file_name(p.modules);
}

void Session::attach(pid_t pid) {
    TracedProcess& p = add_process(pid, 0);
    p.target = Target::attach(pid);
    p.target->use_router(router_);
    if (options_.pin) p.target->pin_to_one_cpu();
    p.tracer = std::make_unique<Tracer>(*p.target, p.tap, p.modules, options_.tracer);
    if (options_.follow_forks) p.tracer->set_follower(this);
    arm_exit_scan(p);
    try {
        p.tracer->start_attached();
    } catch (const Error& e) {
        p.tracer->detach();  // restores anything planted so far
        throw;
    }
    p.name = file_name(p.modules);
    p.tracer->resume_all();
}

// The child is stopped at its first stop; it runs once the parent's event is handled.
void Session::adopt_fork(Tracer& parent, Tid parent_tid, pid_t child) {
    TracedProcess* from = process_of(&parent.target());
    TracedProcess& p = add_process(child, from ? from->pid : 0);
    p.target = Target::adopt(child, parent.target());
    p.tracer = std::make_unique<Tracer>(parent, parent_tid, *p.target, p.tap, p.modules);
    p.tracer->set_follower(this);
    arm_exit_scan(p);
    if (from) p.ledger.inherit(from->ledger);
    p.name = from ? from->name : file_name(p.modules);
    p.tracer->resume_all();
}

// A vfork child (posix_spawn) at its exec stop: traced like a program launched there.
void Session::adopt_exec(Tracer& parent, pid_t child) {
    TracedProcess* from = process_of(&parent.target());
    TracedProcess& p = add_process(child, from ? from->pid : 0);
    p.target = Target::adopt(child, parent.target());
    p.tracer = std::make_unique<Tracer>(*p.target, p.tap, p.modules, options_.tracer);
    p.tracer->set_follower(this);
    arm_exit_scan(p);
    try {
        p.tracer->start(child);
    } catch (const Error& e) {
        // An image leakcheck cannot hook (no allocator) runs on untraced, as without -f.
        warn("process " + std::to_string(child) + ": " + e.what() + "; not traced");
        p.tracer->detach();
        processes_.pop_back();
        return;
    }
    p.name = file_name(p.modules);
    p.tracer->resume_all();
}

// The reachability scan (leak_scan.hpp). A failed scan costs its summary, never the session.
void Session::scan_process(TracedProcess& process, const Tracer::ExitState* exit) noexcept {
    try {
        ScanOptions scan;
        // After an attach, blocks from before it are heap memory the ledger does not know.
        scan.untracked_heap_is_root = !process.target->launched();
        process.leaks = scan_target(*process.target, process.ledger.live(), scan, exit ? &exit->dying : nullptr,
                                    exit ? &exit->stack_from : nullptr);
    } catch (const std::exception& e) {
        warn(std::string("reachability scan of process ") + std::to_string(process.pid) + " failed: " + e.what());
        process.leaks.reset();
    }
}

void Session::arm_exit_scan(TracedProcess& process) {
    if (options_.scan_at_exit) process.tracer->set_exit_observer(
            [this, &process](const Tracer::ExitState& exit) { scan_process(process, &exit); });
}

void Session::scan_leaks() {
    stop_all();
    for (auto& p : processes_)
        if (p->alive()) scan_process(*p);
}

std::optional<LeakScan> Session::scan_now() {
    if (!root_ || !root_->alive()) return std::nullopt;
    std::optional<LeakScan> kept = std::move(root_->leaks);
    stop_all();
    scan_process(*root_);
    std::optional<LeakScan> now = std::exchange(root_->leaks, std::move(kept));
    return now;
}

void Session::write_leaks(std::ostream& out, const LeakScan& scan, const ReportOptions& options) {
    write_leak_report(out, scan, root_->ledger.stacks(), root_->modules, symbolizer_, options);
    out.flush();
}

void Session::stop_all() {
    for (std::size_t i = 0; i < processes_.size(); ++i)
        if (processes_[i]->alive()) processes_[i]->tracer->stop_all();
}

void Session::resume_all() {
    for (std::size_t i = 0; i < processes_.size(); ++i)
        if (processes_[i]->alive()) processes_[i]->tracer->resume_all();
}

std::unique_ptr<TracedProcess> Session::take_ended_child() {
    for (auto it = processes_.begin(); it != processes_.end(); ++it) {
        TracedProcess& p = **it;
        if (&p == root_ || p.alive()) continue;
        std::unique_ptr<TracedProcess> ended = std::move(*it);
        processes_.erase(it);
        return ended;
    }
    return nullptr;
}

RunEnd Session::run(std::uint64_t deadline_ns, int* signal) {
    if (!any_alive()) return RunEnd::kExited;
    interrupted_thread_ = 0;
    resume_all();
    arm_timer(deadline_ns);
    RunEnd why = RunEnd::kExited;
    bool awaiting_copy = false;  // of a Ctrl-C, let through to be taken (see below)
    try {
        for (;;) {
            if (!any_alive()) break;
            if (const int sig = take_pending_signal()) {
                if (sig == SIGINT && options_.intercept_sigint) {
                    stop_all();
                    interrupted_thread_ = root_->tracer->take_interrupt();
                    // A Ctrl-C reaches the program's process group too. When the interrupt
                    // stopped its threads before one took the program's copy, that copy is
                    // still pending and would end the next run at once: let them run until
                    // it is taken (and swallowed), which stops them again just below.
                    // A copy blocked for now would come later, when no Ctrl-C is answered:
                    // the tracer lets it go then.
                    if (!interrupted_thread_) {
                        const Tracer::PendingSigint copy = root_->tracer->pending_sigint();
                        if (copy == Tracer::PendingSigint::kDeliverable) {
                            awaiting_copy = true;
                            resume_all();
                            continue;
                        }
                        if (copy == Tracer::PendingSigint::kBlocked) root_->tracer->sigint_answered();
                    }
                    why = RunEnd::kInterrupted;
                    break;
                }
                if (signal) *signal = sig;
                why = RunEnd::kSignal;
                break;
            }
            if (deadline_ns != 0 && (alarm_fired() || now_ns() >= deadline_ns)) {
                why = RunEnd::kDeadline;
                break;
            }
            if (root_->tap.has_caught()) {
                caught_ = root_->tap.take_caught();
                stop_all();
                why = RunEnd::kCaught;
                break;
            }
            if (const Tid taker = root_->tracer->take_interrupt()) {
                interrupted_thread_ = taker;
                stop_all();
                // The same Ctrl-C reached leakcheck too; it has been answered.
                forget_pending_sigint();
                why = RunEnd::kInterrupted;
                break;
            }
            Tid tid = 0;
            int status = 0;
            Target* owner = nullptr;
            const StopRouter::Result got = router_.next(nullptr, tid, status, owner);
            if (got == StopRouter::Result::kInterrupted) continue;  // look at the flags
            if (got == StopRouter::Result::kNoChildren) {
                for (auto& p : processes_)
                    if (p->target) p->target->mark_dead();
                break;
            }
            TracedProcess* p = process_of(owner);
            if (!p) continue;
            p->tracer->handle(owner->accept(tid, status));
            if (p->alive()) continue;
            p->end = p->tracer->end();
            if (std::string exe = file_name(p->modules); !exe.empty()) p->name = std::move(exe);  // after an exec
            if (p != root_) {
                why = RunEnd::kChildEnded;
                break;
            }
        }
    } catch (const Error& e) {
        arm_timer(0);
        clear_alarm();
        note_error(std::string(e.what()) + "; detaching, the program runs on untraced");
        for (std::size_t i = 0; i < processes_.size(); ++i)
            if (processes_[i]->alive()) processes_[i]->tracer->detach();
        throw;
    }
    arm_timer(0);
    clear_alarm();
    // Stopped for something else (a catch) before the copy was taken: it goes when it comes.
    if (awaiting_copy && why != RunEnd::kInterrupted && root_->alive()) root_->tracer->sigint_answered();
    if (why == RunEnd::kChildEnded) return why;
    if (!root_->alive()) root_end_ = root_->tracer->end();
    if (!any_alive()) return RunEnd::kExited;
    return why;
}

std::vector<std::string> Session::describe_stack(StackId stack, std::size_t max_frames) {
    std::vector<std::string> lines;
    const std::string text = format_stack(root_->ledger.stacks().pcs(stack), root_->modules, symbolizer_, max_frames, 0);
    std::size_t begin = 0;
    while (begin < text.size()) {
        const std::size_t end = text.find('\n', begin);
        lines.push_back(text.substr(begin, end - begin));
        begin = end + 1;
    }
    return lines;
}

std::vector<std::string> Session::describe_thread_stack(Tid tid, std::size_t max_frames) {
    std::vector<std::string> lines;
    if (!root_ || !root_->alive()) return lines;
    const std::vector<RemoteAddr> pcs = root_->tracer->thread_stack(tid);
    if (pcs.empty()) return lines;
    const std::string text = format_stack(pcs, root_->modules, symbolizer_, max_frames, 0, true);
    std::size_t begin = 0;
    while (begin < text.size()) {
        const std::size_t end = text.find('\n', begin);
        lines.push_back(text.substr(begin, end - begin));
        if (end == std::string::npos) break;
        begin = end + 1;
    }
    return lines;
}

std::string Session::describe_crash(const TracedProcess& process, std::size_t max_frames) {
    const ProcessEnd& e = &process == root_ ? end() : process.end;
    if (e.crash_stack.empty()) return {};
    return "Thread " + std::to_string(e.crash_tid) + " received " + signal_name(e.signal) + " at:\n" +
           format_stack(e.crash_stack, process.modules, symbolizer_, max_frames, 1, true);
}

nlohmann::ordered_json Session::crash_frames_json(const TracedProcess& process, std::size_t max_frames) {
    const ProcessEnd& e = &process == root_ ? end() : process.end;
    return stack_to_json(e.crash_stack, process.modules, symbolizer_, max_frames, true);
}

std::string Session::describe_crash(std::size_t max_frames) {
    return root_ ? describe_crash(*root_, max_frames) : std::string{};
}

std::vector<Tid> Session::threads() const {
    if (!root_ || !root_->target) return {};
    std::vector<Tid> tids(root_->target->threads().begin(), root_->target->threads().end());
    std::sort(tids.begin(), tids.end());
    return tids;
}

void Session::stop() { stop_all(); }

void Session::resume() { resume_all(); }

void Session::detach() {
    for (std::size_t i = 0; i < processes_.size(); ++i)
        if (processes_[i]->alive()) processes_[i]->tracer->detach();
}

void Session::kill() {
    // Every process gets its SIGKILL before any is reaped: Target::kill waits for all tracees.
    TracedProcess* reaper = nullptr;
    for (auto& p : processes_) {
        if (!p->alive()) continue;
        if (reaper) p->target->send_kill();
        else reaper = p.get();
    }
    if (reaper) reaper->target->kill();
}

const ProcessEnd& Session::end() const noexcept {
    return root_ && root_->tracer && root_->tracer->end().ended ? root_->tracer->end() : root_end_;
}

void Session::write_report(std::ostream& out, const ReportOptions& options, const GrowthTracker* growth,
                           bool json) {
    if (root_) write_process_report(out, *root_, options, growth, json);
}

void Session::write_process_report(std::ostream& out, TracedProcess& process, const ReportOptions& options,
                                   const GrowthTracker* growth, bool json) {
    if (json) {
        write_json_report(out, process.ledger, process.modules, symbolizer_, options, growth, &process.mappings,
                          process.leaks ? &*process.leaks : nullptr);
    } else {
        leakcheck::write_report(out, process.ledger, process.modules, symbolizer_, options, growth);
        write_mapping_report(out, process.mappings, process.ledger.stacks(), process.modules, symbolizer_, options);
        if (process.leaks) write_leak_report(out, *process.leaks, process.ledger.stacks(), process.modules, symbolizer_, options);
    }
    out.flush();
}

}  // namespace leakcheck
