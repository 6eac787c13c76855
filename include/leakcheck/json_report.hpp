// The leak report as one JSON object on one line, for tools: the same stacks, filters, order
// and growth marks as the text report (report.hpp), with exact numbers instead of prose.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <ostream>
#include <span>

#include "leakcheck/growth_tracker.hpp"
#include "leakcheck/ledger.hpp"
#include "leakcheck/mapping_ledger.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/report.hpp"
#include "leakcheck/scanner.hpp"
#include "leakcheck/symbolizer.hpp"

namespace leakcheck {

// Writes one line, keys in this order:
//   {"version": kJsonSchemaVersion, "type": "report",                (json_events.hpp)
//    "time": <options.timestamp, Unix seconds> | null,
//    "pid": <options.pid>,                                          (only when not 0)
//    "final": <options.last_report>,
//    "summary": {"allocations", "alloc_bytes", "frees", "unknown_frees", "missed_releases",
//                "outstanding_bytes", "outstanding_blocks"},        (the ledger's, unfiltered)
//    "filter": {"min_age_ms", "min_size", "max_size",
//               "shown_blocks", "shown_bytes"},                     (only with filters active)
//    "stacks": [{"id", "bytes", "blocks", "growing",
//                "deltas": [<int>, ...],                            (only with a tracker)
//                "frames": [{"pc", "function", "offset", "file", "line", "module",
//                            "module_offset", "inlined"}, ...],
//                "addresses": [{"addr", "size"}, ...]}]}            (only with show_addresses)
// Frames run innermost first, inlined ones expanded as in the text; a field not known is
// null (function, offset without an entry point, file, line 0, module and its offset).
// Addresses are plain numbers (user-space addresses fit a double's 53 bits exactly).
// With `mappings`, the object also has "mappings" (see report_mappings.hpp); with `leaks`
// (unless options.leak_check is kNo) "leaks" (leak_report.hpp's leak_json).
void write_json_report(std::ostream& out, const Ledger& ledger, const ModuleMap& modules,
                       Symbolizer& symbolizer, const ReportOptions& options,
                       const GrowthTracker* growth = nullptr, const MappingLedger* mappings = nullptr,
                       const LeakScan* leaks = nullptr);

// A stack's first max_frames PCs as the report's "frames" array; with `first_is_pc` the first
// PC is where a thread stopped (a crash), not a return address.
nlohmann::ordered_json stack_to_json(std::span<const RemoteAddr> pcs, const ModuleMap& modules,
                                     Symbolizer& symbolizer, std::size_t max_frames, bool first_is_pc = false);

}  // namespace leakcheck
