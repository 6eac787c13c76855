// The reachability scan in a report: valgrind's LEAK SUMMARY (its shape, so people and tools
// recognise it), with --leak-check=full the stacks of each kind before it, and the same in
// JSON. Touches no ptrace.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>

#include "leakcheck/module_map.hpp"
#include "leakcheck/report.hpp"
#include "leakcheck/scanner.hpp"
#include "leakcheck/stack_table.hpp"
#include "leakcheck/symbolizer.hpp"

namespace leakcheck {

// With LeakCheck::kFull, for each kind in options.leak_kinds that has blocks, in the order
// definite, indirect, possible, reachable: "<Kind phrase, capitalised> blocks from <n>
// stack(s):" ("Definitely lost blocks from 2 stacks:"), then the top options.top stacks by
// bytes as "\t<b> bytes in <k> blocks from stack" and their frames (format_stack); then
//   LEAK SUMMARY:
//      definitely lost: 888 bytes in 37 blocks
//      indirectly lost: 0 bytes in 0 blocks
//        possibly lost: 0 bytes in 0 blocks
//      still reachable: 4,096 bytes in 1 blocks
// (numbers with thousands separators, "blocks" always, as valgrind prints them).
// Nothing with LeakCheck::kNo.
void write_leak_report(std::ostream& out, const LeakScan& scan, const StackTable& stacks, const ModuleMap& modules,
                       Symbolizer& symbolizer, const ReportOptions& options);

// {"definite": {"bytes", "blocks"}, "indirect": ..., "possible": ..., "reachable": ...,
//  "stacks": [{"id", "kind", "bytes", "blocks"}, ...]}: every stack with lost or reachable
// blocks, by kind then bytes; "id" is the stack's id in the report's "stacks".
nlohmann::json leak_json(const LeakScan& scan);

// 4096 -> "4,096"
std::string with_thousands(std::uint64_t n);

// "definite,possible" / "all" to a LeakKind bit mask; nullopt when a name is unknown.
std::optional<unsigned> parse_leak_kinds(const std::string& list);

}  // namespace leakcheck
