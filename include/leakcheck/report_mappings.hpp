// The report's mappings section (memory mapped and never unmapped, kept out of the heap
// numbers) in text and as JSON: top stacks by outstanding mapped bytes, symbolized exactly as
// the heap report's, then the mapping totals. Touches no ptrace.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <ostream>

#include "leakcheck/mapping_ledger.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/report.hpp"
#include "leakcheck/stack_table.hpp"
#include "leakcheck/symbolizer.hpp"

namespace leakcheck {

// Meant to follow write_report's output. Writes nothing when nothing was ever mapped (the
// report of a program that never maps memory stays as it was), only the "Mappings: " line when
// every mapping was unmapped, else:
//   Top <options.top> stacks with outstanding mappings:
//   \taddr = <hex> size = <bytes> (mmap|shm)          with show_addresses, per mapping by address
//   \t<n> bytes in <n> mappings from stack
//   \t\t#<k> <format_frame>                            as the heap report: inlined frames on
//                                                       lines of their own, max_frames PCs, every
//                                                       PC a return address; or "\t\t(no stack recorded)"
//   Mappings: <summary line>
// Stacks come from MappingLedger::top_stacks and are symbolized through `stacks` (the heap
// Ledger's table, which interned the events' StackIds). Sizes are page-rounded lengths as they
// stand after any munmap cut them. Of the options only top, max_frames and show_addresses
// apply: the block filters (age, size) and sort are the heap's.
void write_mapping_report(std::ostream& out, const MappingLedger& mappings, const StackTable& stacks,
                          const ModuleMap& modules, Symbolizer& symbolizer, const ReportOptions& options);

// "3 mapped (196608 bytes), 1 unmapped, 131072 bytes in 2 mappings outstanding" (asked bytes
// in the parentheses, page-rounded ones outstanding; singular nouns for counts of 1). No
// "Mappings: " prefix, no newline.
void write_mapping_summary(std::ostream& out, const MappingTotals& totals);

// The same section for the JSON report to embed (e.g. as doc["mappings"]), keys in order:
//   {"summary": {"mapped", "mapped_bytes", "unmapped", "outstanding_bytes", "outstanding_mappings"},
//    "stacks": [{"id", "bytes", "mappings",
//                "frames": [...],                                  (as json_report.hpp's)
//                "addresses": [{"addr", "size", "kind"}, ...]}]}   (only with show_addresses)
// "kind" is "mmap" or "shm". Always both keys, "stacks" empty when nothing is outstanding.
nlohmann::ordered_json mappings_to_json(const MappingLedger& mappings, const StackTable& stacks,
                                        const ModuleMap& modules, Symbolizer& symbolizer,
                                        const ReportOptions& options);

}  // namespace leakcheck
