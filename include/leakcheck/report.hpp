// The text report, in the shape of bcc's memleak: top stacks by outstanding bytes, each with its
// frames symbolized, optionally the blocks' addresses, then a summary line. Touches no ptrace.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>

#include "leakcheck/ledger.hpp"
#include "leakcheck/module_map.hpp"
#include "leakcheck/symbolizer.hpp"

namespace leakcheck {

struct ReportOptions {
    std::size_t top = 10;          // how many stacks
    std::size_t max_frames = 32;   // frames printed per stack (PCs, before inline expansion)
    bool show_addresses = false;   // list every outstanding block of a shown stack
    // Frees of blocks the ledger never saw allocated. After an attach these are blocks from
    // before it; in a launched program nearly all are the allocator's own (glibc's tcache hands
    // its cached chunks to free() when a thread exits), so launch mode leaves them out.
    bool show_unknown_frees = false;
};

// Writes the top-stacks section ("No outstanding allocations." when there are none), then
// "Summary: " and the summary line. Each stack: with show_addresses, "\taddr = <hex> size = <n>"
// per live block by address; "\t<n> bytes in <n> allocations from stack"; then "\t\t#<k> " and
// format_frame per frame, inlined frames on lines of their own, k counting lines; a stack that
// was not captured (id 0) shows "\t\t(no stack recorded)". Every PC is symbolized as a return
// address; only the shown stacks' PCs are symbolized, and the live blocks are walked once.
void write_report(std::ostream& out, const Ledger& ledger, const ModuleMap& modules,
                  Symbolizer& symbolizer, const ReportOptions& options);

// "12 allocations (98304 bytes), 7 frees, 40960 bytes in 5 blocks outstanding" and, when there
// were any, ", 2 frees of unknown blocks" (singular nouns for counts of 1). No "Summary: "
// prefix, no newline.
void write_summary(std::ostream& out, const LedgerTotals& totals, bool show_unknown_frees = true);

// One frame line without its number:
//   "fibonacci+0x1f (fib_leak.c:12) [/path/fib_leak]"  function+offset, file basename, module
//   "helper (fib_leak.c:7) [/path/fib_leak] (inlined)"  inlined into the next line's function
//   "?? [/usr/lib/libfoo.so+0x1234]"                    no symbol: offset in the file
//   "0x7f8f70863220"                                    pc outside any known module
std::string format_frame(const Location& location, const SourceFrame& frame);

}  // namespace leakcheck
