// The text report, in the shape of bcc's memleak: top stacks by outstanding bytes (or growing
// stacks first), each with its frames symbolized, optionally the blocks' addresses, then a
// summary line. Filters by block age and size. Touches no ptrace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <ostream>
#include <span>
#include <string>

#include "leakcheck/growth_tracker.hpp"
#include "leakcheck/ledger.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/symbolizer.hpp"

namespace leakcheck {

enum class Sort : std::uint8_t {
    kBytes,   // by outstanding bytes (then blocks, then stack id), descending
    kGrowth,  // growing stacks first, by growth over the tracked reports, then the rest by bytes
};

struct ReportOptions {
    std::size_t top = 10;          // how many stacks
    std::size_t max_frames = 32;   // frames printed per stack (PCs, before inline expansion)
    bool show_addresses = false;   // list every outstanding block of a shown stack
    // The program's frees of blocks the ledger never saw allocated (after an attach: blocks
    // from before it). The allocator's own such frees are counted apart and never shown.
    bool show_unknown_frees = true;

    // Filters, per block. Any active one makes the report count only the blocks that pass.
    std::uint64_t min_age_ms = 0;  // only blocks allocated more than this long before now_ns
    std::uint64_t min_size = 0;    // only blocks of at least this many bytes
    std::uint64_t max_size = 0;    // only blocks of at most this many bytes; 0 = no limit
    // The report's "now" (CLOCK_MONOTONIC ns, the events' time base) for min_age_ms; 0 turns
    // the age filter off, since ages cannot be told without it.
    std::uint64_t now_ns = 0;
    // With -f: the process the report is about (JSON gives it a "pid"); 0 otherwise.
    std::int64_t pid = 0;

    // Wall-clock time of a periodic report: its header starts "[HH:MM:SS] " (local time).
    // 0 = no timestamp (the final report). The JSON report gives it as "time" (null for 0).
    std::time_t timestamp = 0;
    // The last report of its process in this run (JSON: "final": true); text is the same.
    bool last_report = false;
    Sort sort = Sort::kBytes;

    // The reachability scan's part of a report (leak_report.hpp), when a scan was made:
    // nothing, the LEAK SUMMARY, or also the stacks of the kinds in leak_kinds (bit
    // 1 << LeakKind); the defaults are valgrind's.
    enum class LeakCheck : std::uint8_t { kNo, kSummary, kFull };
    LeakCheck leak_check = LeakCheck::kSummary;
    unsigned leak_kinds = 0b0101;  // definite and possible
};

// True when min_age_ms (with now_ns), min_size or max_size would exclude some blocks.
bool filters_active(const ReportOptions& options) noexcept;

// Writes the top-stacks section, then "Summary: " and the summary line. The section starts
// with "Top <n> stacks with outstanding allocations:", or "No outstanding allocations." when
// there are none ("No outstanding allocations match the filters." when filters hid them all),
// either prefixed "[HH:MM:SS] " when options.timestamp is set. Each stack: with
// show_addresses, "\taddr = <hex> size = <n>" per live block by address; "\t<n> bytes in <n>
// allocations from stack", followed by " (growing: +<d> +<d> +<d> bytes in the last 3
// reports)" when `growth` says the stack is growing; then "\t\t#<k> " and format_frame per
// frame, inlined frames on lines of their own, k counting lines; a stack that was not captured
// (id 0) shows "\t\t(no stack recorded)". Every PC is symbolized as a return address; only the
// shown stacks' PCs are symbolized.
//
// With filters active, stacks, their totals and their addresses count only passing blocks
// (one pass over the live blocks, a second one for addresses), the Summary line stays the
// ledger's unfiltered totals, and when the filters hid any block a line comes before it:
// "Filtered: showing <n> of <n> outstanding blocks (<n> of <n> bytes): <criteria>", the
// criteria being "older than <n> ms", "of at least <n> bytes", "of at most <n> bytes" or
// "of <min> to <max> bytes", joined by ", ".
//
// `growth` (optional) should have recorded the same ledger just before; growth is measured on
// the ledger's unfiltered per-stack bytes.
void write_report(std::ostream& out, const Ledger& ledger, const ModuleMap& modules,
                  Symbolizer& symbolizer, const ReportOptions& options,
                  const GrowthTracker* growth = nullptr);

// "12 allocations (98304 bytes), 7 frees, 40960 bytes in 5 blocks outstanding" and, when there
// were any, ", 2 frees of unknown blocks" (singular nouns for counts of 1). No "Summary: "
// prefix, no newline.
void write_summary(std::ostream& out, const LedgerTotals& totals, bool show_unknown_frees = true);

// The frames of one stack, "#k frame" per line after `indent` tabs; "(no stack recorded)" for
// an empty one. Every PC is symbolized as a return address.
// `first_is_pc`: the first PC is where a thread stopped (a crash), not a return address.
std::string format_stack(std::span<const RemoteAddr> pcs, const ModuleMap& modules, Symbolizer& symbolizer,
                         std::size_t max_frames, int indent = 2, bool first_is_pc = false);

// The "Findings:" section (double and mismatched releases), or nothing when there are none.
void write_findings(std::ostream& out, const Ledger& ledger, const ModuleMap& modules, Symbolizer& symbolizer,
                    const ReportOptions& options);

// One frame line without its number:
//   "fibonacci+0x1f (fib_leak.c:12) [/path/fib_leak]"  function+offset, file basename, module
//   "helper (fib_leak.c:7) [/path/fib_leak] (inlined)"  inlined into the next line's function
//   "?? [/usr/lib/libfoo.so+0x1234]"                    no symbol: offset in the file
//   "0x7f8f70863220"                                    pc outside any known module
std::string format_frame(const Location& location, const SourceFrame& frame);

}  // namespace leakcheck
