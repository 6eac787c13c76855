// Session operations over Target + Tracer + Ledger. The wait loop sleeps in waitpid; a signal
// to leakcheck (or the interval timer's SIGALRM) interrupts it, so deadlines and Ctrl-C are
// seen within one stop.
#include "leakcheck/session.hpp"

#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <cstring>

#include "leakcheck/error.hpp"
#include "leakcheck/json_report.hpp"
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
    if (range_ && !caught_ && event.size >= range_->first && event.size <= range_->second) caught_ = event;
}

Session::Session(SessionOptions options) : options_(std::move(options)) {
    options_.tracer.intercept_sigint = options_.intercept_sigint;
}

Session::~Session() {
    if (!alive()) return;
    if (attached()) detach();
    else kill();
}

void Session::launch(const std::vector<std::string>& command) {
    target_ = Target::launch(LaunchOptions{command});
    target_->set_poll_ns(options_.poll_ns);
    if (options_.pin) target_->pin_to_one_cpu();
    tracer_ = std::make_unique<Tracer>(*target_, tap_, modules_, options_.tracer);
    try {
        tracer_->start(target_->pid());
    } catch (const Error&) {
        target_->kill();  // it has run none of its own code yet
        throw;
    }
}

void Session::attach(pid_t pid) {
    target_ = Target::attach(pid);
    target_->set_poll_ns(options_.poll_ns);
    if (options_.pin) target_->pin_to_one_cpu();
    tracer_ = std::make_unique<Tracer>(*target_, tap_, modules_, options_.tracer);
    try {
        tracer_->start_attached();
    } catch (const Error& e) {
        tracer_->detach();  // restores anything planted so far
        throw;
    }
    tracer_->resume_all();
}

RunEnd Session::run(std::uint64_t deadline_ns, int* signal) {
    if (!alive()) return RunEnd::kExited;
    tracer_->resume_all();
    arm_timer(deadline_ns);
    RunEnd why = RunEnd::kExited;
    try {
        for (;;) {
            if (!target_->alive()) break;
            if (const int sig = take_pending_signal()) {
                if (sig == SIGINT && options_.intercept_sigint) {
                    tracer_->stop_all();
                    tracer_->take_interrupt();
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
            if (tap_.has_caught()) {
                caught_ = tap_.take_caught();
                tracer_->stop_all();
                why = RunEnd::kCaught;
                break;
            }
            if (tracer_->take_interrupt()) {
                tracer_->stop_all();
                // The same Ctrl-C reached leakcheck too; it has been answered.
                forget_pending_sigint();
                why = RunEnd::kInterrupted;
                break;
            }
            Stop stop;
            if (!target_->wait(stop)) continue;  // interrupted: look at the flags
            tracer_->handle(stop);
        }
    } catch (const Error& e) {
        arm_timer(0);
        clear_alarm();
        log_stream() << "leakcheck: error: " << e.what() << "; detaching, the program runs on untraced\n";
        tracer_->detach();
        throw;
    }
    arm_timer(0);
    clear_alarm();
    if (!target_->alive()) {
        end_ = tracer_->end();
        return RunEnd::kExited;
    }
    return why;
}

std::vector<std::string> Session::describe_stack(StackId stack, std::size_t max_frames) {
    std::vector<std::string> lines;
    const std::string text = format_stack(ledger_.stacks().pcs(stack), modules_, symbolizer_, max_frames, 0);
    std::size_t begin = 0;
    while (begin < text.size()) {
        const std::size_t end = text.find('\n', begin);
        lines.push_back(text.substr(begin, end - begin));
        begin = end + 1;
    }
    return lines;
}

std::string Session::describe_crash(std::size_t max_frames) {
    const ProcessEnd& e = end();
    if (e.crash_stack.empty()) return {};
    return "Thread " + std::to_string(e.crash_tid) + " received " + signal_name(e.signal) + " at:\n" +
           format_stack(e.crash_stack, modules_, symbolizer_, max_frames, 1, true);
}

std::vector<Tid> Session::threads() const {
    if (!target_) return {};
    std::vector<Tid> tids(target_->threads().begin(), target_->threads().end());
    std::sort(tids.begin(), tids.end());
    return tids;
}

void Session::stop() {
    if (alive()) tracer_->stop_all();
}

void Session::resume() {
    if (alive()) tracer_->resume_all();
}

void Session::detach() {
    if (alive()) tracer_->detach();
}

void Session::kill() {
    if (target_ && target_->alive()) target_->kill();
}

const ProcessEnd& Session::end() const noexcept { return tracer_ && tracer_->end().ended ? tracer_->end() : end_; }

void Session::write_report(std::ostream& out, const ReportOptions& options, const GrowthTracker* growth,
                           bool json) {
    if (json) {
        write_json_report(out, ledger_, modules_, symbolizer_, options, growth, &mappings_);
    } else {
        leakcheck::write_report(out, ledger_, modules_, symbolizer_, options, growth);
        write_mapping_report(out, mappings_, ledger_.stacks(), modules_, symbolizer_, options);
    }
    out.flush();
}

}  // namespace leakcheck
