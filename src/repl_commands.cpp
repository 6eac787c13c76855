// The prompt's commands that look at what the session has recorded: info leaks/stacks/block/
// threads/stats/catchpoints, snapshot and diff, catch and delete, bt, save report. The report
// itself is Session::write_report; stacks are symbolized by Session::describe_stack.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>

#include "repl_impl.hpp"
#include "leakcheck/leak_report.hpp"

namespace leakcheck::repl {
namespace {

std::string signed_count(std::int64_t n, const char* one, const char* many) {
    const std::uint64_t magnitude = n < 0 ? static_cast<std::uint64_t>(-(n + 1)) + 1 : static_cast<std::uint64_t>(n);
    return (n < 0 ? "-" : "+") + plural(magnitude, one, many);
}

// Session::describe_stack's (or describe_thread_stack's) lines as bare frames: without a
// "#K " of their own, and none at all for "(no stack recorded)".
std::vector<std::string> bare_frames(std::vector<std::string> frames) {
    for (std::string& f : frames) {
        std::size_t k = f.find_first_not_of('\t');
        if (k != std::string::npos && f[k] == '#') {
            std::size_t digits = k + 1;
            while (digits < f.size() && std::isdigit(static_cast<unsigned char>(f[digits]))) ++digits;
            if (digits > k + 1 && digits < f.size() && f[digits] == ' ') f.erase(0, digits + 1);
        }
    }
    if (frames.size() == 1 && frames.front().find("(no stack recorded)") != std::string::npos) frames.clear();
    return frames;
}

std::vector<std::string> frames_of(Session& session, StackId stack, std::size_t max_frames) {
    return bare_frames(session.describe_stack(stack, max_frames));
}

std::string thread_name(pid_t pid, pid_t tid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/comm");
    std::string name;
    std::getline(in, name);
    return name;
}

}  // namespace

void Repl::require_data() const {
    if (!session_) throw CommandError("No leak data: the program has not been run.  Use \"run\" or \"attach\".");
}

ReportOptions Repl::report_options() const {
    ReportOptions options = settings_.report;
    options.now_ns = now_ns();
    options.timestamp = 0;
    if (options.top == std::numeric_limits<std::size_t>::max())
        options.top = std::max<std::size_t>(1, session_->ledger().top_stacks(options.top).size());
    return options;
}

void Repl::print_stack(StackId stack, std::size_t max_frames, const char* indent) {
    const std::vector<std::string> frames = frames_of(*session_, stack, max_frames);
    if (frames.empty()) out() << indent << "(no stack recorded)\n";
    for (std::size_t i = 0; i < frames.size(); ++i) out() << indent << '#' << i << "  " << frames[i] << '\n';
}

void Repl::print_thread_stack(Tid tid, std::size_t max_frames) {
    if (at_catch_ && session_->caught() && session_->caught()->tid == tid)
        return print_stack(session_->caught()->stack, max_frames);
    const std::vector<std::string> frames = bare_frames(session_->describe_thread_stack(tid, max_frames));
    if (frames.empty()) throw CommandError("Cannot read the stack of LWP " + std::to_string(tid) + ".");
    for (std::size_t i = 0; i < frames.size(); ++i) out() << '#' << i << "  " << frames[i] << '\n';
}

void Repl::print_catch() {
    const AllocEvent& event = *session_->caught();
    out() << "Catchpoint: allocation of " << event.size << " bytes at 0x" << hex(event.addr) << " in thread "
          << event.tid << " (" << to_string(event.kind) << ")\n";
    print_stack(event.stack, settings_.report.max_frames);
    out().flush();
}

void Repl::cmd_info_leaks(const std::string& args) {
    require_data();
    ReportOptions options = report_options();
    const std::string words = std::string(args.substr(std::min(args.size(), args.find_first_not_of(" \t"))));
    if (const auto kinds = parse_leak_kinds(words.substr(0, words.find_last_not_of(" \t") + 1));
        kinds && !words.empty()) {
        // info leaks definite|indirect|possible|reachable|all: a reachability scan, now.
        require_running("The program is not running: a reachability scan needs its memory.");
        const std::optional<LeakScan> scan = session_->scan_now();
        if (!scan) throw CommandError("The reachability scan failed.");
        options.leak_check = ReportOptions::LeakCheck::kFull;
        options.leak_kinds = *kinds;
        session_->write_leaks(out(), *scan, options);
        return;
    }
    if (args.find_first_not_of(" \t") != std::string::npos) {
        const std::uint64_t n = parse_count(args, "number of stacks");
        if (n == 0) throw CommandError("The number of stacks must be at least 1.");
        options.top = n;
    }
    growth_.record(session_->ledger());
    session_->write_report(out(), options, &growth_, settings_.json);
}

void Repl::cmd_info_stacks() {
    require_data();
    const Ledger& ledger = session_->ledger();
    const std::vector<StackId> ids = ledger.top_stacks(std::numeric_limits<std::size_t>::max());
    if (ids.empty()) {
        out() << "No outstanding allocations.\n";
        return;
    }
    char line[96];
    std::snprintf(line, sizeof line, "%7s %12s %8s  %s\n", "Stack", "Bytes", "Blocks", "Frame #0");
    out() << line;
    for (const StackId id : ids) {
        const StackStats& s = ledger.stack_stats(id);
        const std::vector<std::string> frames = frames_of(*session_, id, 1);
        std::snprintf(line, sizeof line, "%7u %12llu %8llu  ", static_cast<unsigned>(id),
                      static_cast<unsigned long long>(s.live_bytes), static_cast<unsigned long long>(s.live_blocks));
        out() << line << (frames.empty() ? "(no stack recorded)" : frames.front()) << '\n';
    }
}

void Repl::cmd_info_block(const std::string& args) {
    const RemoteAddr addr = parse_address(args);
    require_data();
    const Ledger& ledger = session_->ledger();
    std::optional<LiveBlock> block;
    if (const LiveBlock* exact = ledger.find(addr)) {
        block = *exact;
    } else {
        // An interior pointer: one pass over the live blocks is fine at a prompt.
        ledger.live().for_each([&](const LiveBlock& b) {
            if (!block && addr > b.addr && addr - b.addr < b.size) block = b;
        });
    }
    if (!block) throw CommandError("No live block at 0x" + hex(addr) + ".");
    if (block->addr != addr)
        out() << "0x" << hex(addr) << " is " << plural(addr - block->addr, "byte", "bytes") << " into this block:\n";
    const std::uint64_t now_ms = ledger.epoch_ns() && now_ns() > ledger.epoch_ns()
                                     ? (now_ns() - ledger.epoch_ns()) / 1000000
                                     : 0;
    const std::uint64_t age = now_ms > block->time_ms ? now_ms - block->time_ms : 0;
    out() << "Block at 0x" << hex(block->addr) << ": size " << block->size << " (" << to_string(block->kind)
          << "), age " << age << " ms, thread " << block->tid << ", stack " << block->stack << '\n';
    print_stack(block->stack, settings_.report.max_frames);
}

void Repl::cmd_info_threads() {
    if (!running()) {
        out() << "No threads.\n";
        return;
    }
    const pid_t pid = session_->pid();
    const Tid current = current_thread_;
    out() << "  Id   Target Id\n";
    int n = 0;
    for (const Tid tid : session_->threads()) {
        char line[64];
        std::snprintf(line, sizeof line, "%c %-4d LWP %d", tid == current ? '*' : ' ', ++n, static_cast<int>(tid));
        out() << line << " \"" << thread_name(pid, tid) << "\"\n";
    }
}

void Repl::cmd_info_stats() {
    require_data();
    const LedgerTotals& t = session_->ledger().totals();
    out() << "Allocations:       " << t.allocs << " (" << plural(t.alloc_bytes, "byte", "bytes") << ")\n";
    out() << "Frees:             " << t.frees;
    if (t.unknown_frees) out() << " (and " << t.unknown_frees << " of unknown blocks)";
    out() << '\n';
    out() << "Live blocks:       " << t.live_blocks << '\n';
    out() << "Live bytes:        " << t.live_bytes << '\n';
    if (running()) out() << "Threads:           " << session_->thread_count() << '\n';
    const TracerStats* st = session_->stats();
    const std::uint64_t stops = st ? st->stops : 0;
    const std::uint64_t end = ended_ns_ ? ended_ns_ : now_ns();
    const double seconds = started_ns_ && end > started_ns_ ? static_cast<double>(end - started_ns_) / 1e9 : 0;
    char rate[96];
    std::snprintf(rate, sizeof rate, "%.1f (over %.3f s)", seconds > 0 ? static_cast<double>(stops) / seconds : 0.0,
                  seconds);
    out() << "Stops:             " << stops << '\n';
    out() << "Stops per second:  " << rate << '\n';
}

void Repl::cmd_info_catch() {
    if (catch_) out() << "Catchpoint: stop at allocations of " << describe_size_range(*catch_) << ".\n";
    else out() << "No catchpoint.\n";
}

void Repl::cmd_snapshot() {
    require_data();
    const Ledger& ledger = session_->ledger();
    std::map<StackId, std::pair<std::uint64_t, std::uint64_t>> snap;
    for (const StackId id : ledger.top_stacks(std::numeric_limits<std::size_t>::max())) {
        const StackStats& s = ledger.stack_stats(id);
        snap[id] = {s.live_bytes, s.live_blocks};
    }
    snapshot_ = std::move(snap);
    const LedgerTotals& t = ledger.totals();
    out() << "Snapshot taken: " << plural(snapshot_->size(), "stack", "stacks") << ", "
          << plural(t.live_bytes, "byte", "bytes") << " in " << plural(t.live_blocks, "block", "blocks")
          << " outstanding.\n";
}

void Repl::cmd_diff() {
    require_data();
    if (!snapshot_) throw CommandError("No snapshot to compare with: take one with \"snapshot\" first.");
    const Ledger& ledger = session_->ledger();
    struct Change {
        StackId id;
        std::int64_t bytes;
        std::int64_t blocks;
    };
    std::vector<Change> changes;
    std::map<StackId, std::pair<std::uint64_t, std::uint64_t>> now;
    for (const StackId id : ledger.top_stacks(std::numeric_limits<std::size_t>::max())) {
        const StackStats& s = ledger.stack_stats(id);
        now[id] = {s.live_bytes, s.live_blocks};
    }
    auto delta = [](std::uint64_t a, std::uint64_t b) { return static_cast<std::int64_t>(a - b); };
    for (const auto& [id, v] : now) {
        const auto it = snapshot_->find(id);
        std::pair<std::uint64_t, std::uint64_t> before{0, 0};
        if (it != snapshot_->end()) before = it->second;
        if (v != before) changes.push_back({id, delta(v.first, before.first), delta(v.second, before.second)});
    }
    for (const auto& [id, v] : *snapshot_)
        if (!now.count(id)) changes.push_back({id, -static_cast<std::int64_t>(v.first), -static_cast<std::int64_t>(v.second)});
    if (changes.empty()) {
        out() << "No change since the snapshot.\n";
        return;
    }
    std::sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) {
        if (a.bytes != b.bytes) return a.bytes > b.bytes;
        if (a.blocks != b.blocks) return a.blocks > b.blocks;
        return a.id < b.id;
    });
    std::int64_t total_bytes = 0, total_blocks = 0;
    for (const Change& c : changes) {
        const StackStats& s = ledger.stack_stats(c.id);
        out() << signed_count(c.bytes, "byte", "bytes") << ", " << signed_count(c.blocks, "block", "blocks")
              << " from stack " << c.id << " (now " << plural(s.live_bytes, "byte", "bytes") << " in "
              << plural(s.live_blocks, "block", "blocks") << "):\n";
        std::vector<std::string> frames = frames_of(*session_, c.id, 3);
        if (frames.size() > 3) frames.resize(3);
        if (frames.empty()) out() << "    (no stack recorded)\n";
        for (std::size_t i = 0; i < frames.size(); ++i) out() << "    #" << i << "  " << frames[i] << '\n';
        total_bytes += c.bytes;
        total_blocks += c.blocks;
    }
    out() << "Total: " << signed_count(total_bytes, "byte", "bytes") << ", "
          << signed_count(total_blocks, "block", "blocks") << " since the snapshot.\n";
}

void Repl::cmd_catch(const std::string& args) {
    catch_ = parse_size_range(args);
    if (session_) session_->set_catch(catch_);
    out() << "Catchpoint set: stop at allocations of " << describe_size_range(*catch_) << ".\n";
}

void Repl::cmd_delete() {
    catch_.reset();
    if (session_) session_->set_catch(std::nullopt);
}

void Repl::cmd_backtrace(const std::string& args) {
    std::size_t frames = settings_.report.max_frames;
    if (args.find_first_not_of(" \t") != std::string::npos) frames = parse_count(args, "number of frames");
    if (!running() || !current_thread_) throw CommandError("No stack.");
    print_thread_stack(current_thread_, frames);
}

void Repl::cmd_thread(const std::string& args) {
    if (!running() || !current_thread_) throw CommandError("No thread selected.");
    const std::vector<Tid> tids = session_->threads();
    if (args.find_first_not_of(" \t") == std::string::npos) {
        const auto it = std::find(tids.begin(), tids.end(), current_thread_);
        out() << "[Current thread is " << (it - tids.begin()) + 1 << " (LWP " << current_thread_ << ")]\n";
        return;
    }
    const std::uint64_t n = parse_count(args, "thread ID");
    if (n == 0 || n > tids.size()) throw CommandError("Invalid thread ID: " + std::to_string(n) + ".");
    current_thread_ = tids[n - 1];
    out() << "[Switching to thread " << n << " (LWP " << current_thread_ << ")]\n";
    print_thread_stack(current_thread_, 1);
}

void Repl::cmd_save_report(const std::string& args) {
    require_data();
    const std::vector<std::string> words = split_args(args);
    if (words.size() != 1) throw CommandError("Usage: save report FILE");
    std::ofstream file(words.front(), std::ios::out | std::ios::trunc);
    if (!file) throw CommandError("Cannot write \"" + words.front() + "\": " + std::strerror(errno) + ".");
    session_->write_report(file, report_options(), growth_.records() ? &growth_ : nullptr, settings_.json);
    if (!file) throw CommandError("Error writing \"" + words.front() + "\".");
    out() << "Report saved to \"" << words.front() << "\".\n";
}

}  // namespace leakcheck::repl
