// The text leak report: the stacks report_selection picks, symbolized (only their PCs) and
// printed memleak-style, optionally with each outstanding block's address, then the totals.
#include "leakcheck/report.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <ctime>
#include <string_view>

#include "report_format.hpp"
#include "report_selection.hpp"

namespace leakcheck {
namespace {

using detail::count;
using detail::hex;

// "[03:00:41] " in local time, as memleak stamps its periodic reports; "" for 0.
std::string timestamp(std::time_t when) {
    if (when == 0) return {};
    std::tm local{};
    if (localtime_r(&when, &local) == nullptr) return {};
    char buf[16];
    const std::size_t n = std::strftime(buf, sizeof buf, "[%H:%M:%S] ", &local);
    return std::string(buf, n);
}

std::string_view basename(std::string_view path) {
    const std::size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string format_frame(const Location& location, const SourceFrame& frame) {
    std::string s;
    if (!frame.function.empty()) {
        s = frame.function;
        if (frame.has_offset) s += "+0x" + hex(frame.offset);
    } else if (location.module.empty()) {
        return "0x" + hex(location.pc);  // nothing but the address is known
    } else {
        s = "??";
    }
    if (!frame.file.empty()) {
        s += " (";
        s += basename(frame.file);
        if (frame.line != 0) s += ":" + std::to_string(frame.line);
        s += ')';
    }
    if (!location.module.empty()) {
        s += " [" + location.module;
        // Without a function name, the offset in the file is what lets one look it up later.
        if (frame.function.empty()) s += "+0x" + hex(location.module_offset);
        s += ']';
    }
    if (frame.inlined) s += " (inlined)";
    return s;
}

void write_summary(std::ostream& out, const LedgerTotals& totals, bool show_unknown_frees) {
    out << count(totals.allocs, "allocation", "allocations") << " ("
        << count(totals.alloc_bytes, "byte", "bytes") << "), " << count(totals.frees, "free", "frees")
        << ", " << count(totals.live_bytes, "byte", "bytes") << " in "
        << count(totals.live_blocks, "block", "blocks") << " outstanding";
    // Never hidden: each one is a release leakcheck failed to see, so the totals are off.
    if (totals.missed_releases != 0)
        out << ", " << count(totals.missed_releases, "allocation", "allocations")
            << " at still-live addresses (missed releases)";
    if (!show_unknown_frees) return;
    if (totals.unknown_frees == 1)
        out << ", 1 free of an unknown block";
    else if (totals.unknown_frees > 1)
        out << ", " << totals.unknown_frees << " frees of unknown blocks";
}

std::string format_stack(std::span<const RemoteAddr> pcs, const ModuleMap& modules, Symbolizer& symbolizer,
                         std::size_t max_frames, int indent, bool first_is_pc) {
    const std::string tabs(static_cast<std::size_t>(indent), '\t');
    if (pcs.empty()) return tabs + "(no stack recorded)\n";
    std::string text;
    std::size_t number = 0;
    bool first = true;
    for (const RemoteAddr pc : pcs.first(std::min(pcs.size(), max_frames))) {
        // Every recorded PC is a return address, the first one included (where the allocator
        // returns to in its caller), unless it is where a thread stopped.
        const Location& loc = symbolizer.symbolize(modules.find(pc), pc, !(first && first_is_pc));
        first = false;
        for (const SourceFrame& frame : loc.frames)
            text += tabs + "#" + std::to_string(number++) + " " + format_frame(loc, frame) + "\n";
    }
    return text;
}

void write_findings(std::ostream& out, const Ledger& ledger, const ModuleMap& modules, Symbolizer& symbolizer,
                    const ReportOptions& options) {
    const Findings& findings = ledger.findings();
    if (findings.count() == 0) return;
    out << "Findings: " << count(findings.count(), "error", "errors") << " in releasing memory"
        << (findings.count() > findings.list().size() ? " (the first " + std::to_string(findings.list().size()) + " shown)" : "")
        << ":\n";
    const auto stack_of = [&](StackId id) {
        return id ? format_stack(ledger.stacks().pcs(id), modules, symbolizer, options.max_frames, 3)
                  : std::string("\t\t\t(stack not recorded; --free-stacks records every release)\n");
    };
    for (const Finding& f : findings.list()) {
        if (f.type == Finding::Type::kDoubleFree) {
            out << "\tdouble free of " << hex(f.addr) << " (" << count(f.size, "byte", "bytes") << ", from "
                << to_string(f.alloc_kind) << ") by thread " << f.tid << "\n";
            out << "\t\treleased again at:\n" << stack_of(f.free_stack);
            out << "\t\tfirst released at:\n" << stack_of(f.first_free_stack);
        } else {
            out << "\tmismatched release: " << hex(f.addr) << " (" << count(f.size, "byte", "bytes")
                << ") from " << to_string(f.alloc_kind) << " released with " << to_string(f.free_kind)
                << " by thread " << f.tid << "\n";
            out << "\t\treleased at:\n" << stack_of(f.free_stack);
        }
        out << "\t\tallocated at:\n" << stack_of(f.alloc_stack);
    }
}

void write_report(std::ostream& out, const Ledger& ledger, const ModuleMap& modules,
                  Symbolizer& symbolizer, const ReportOptions& options, const GrowthTracker* growth) {
    const detail::Selection sel = detail::select_stacks(ledger, options, growth);
    const LedgerTotals& totals = ledger.totals();

    out << timestamp(options.timestamp);
    if (ledger.live().size() == 0)
        out << "No outstanding allocations.\n";
    else if (sel.shown_blocks == 0)
        out << "No outstanding allocations match the filters.\n";
    else
        out << "Top " << options.top << " stacks with outstanding allocations:\n";

    std::string text;  // one stack at a time: fewer stream calls for large reports
    for (const detail::ShownStack& shown : sel.stacks) {
        text.clear();
        for (const LiveBlock* b : shown.addresses)
            text += "\taddr = " + hex(b->addr) + " size = " + std::to_string(b->size) + "\n";
        text += "\t" + count(shown.bytes, "byte", "bytes") + " in " +
                count(shown.blocks, "allocation", "allocations") + " from stack";
        if (shown.growing) {
            text += " (growing:";
            for (const std::int64_t d : shown.deltas) text += " +" + std::to_string(d);
            text += " bytes in the last " + std::to_string(shown.deltas.size()) + " reports)";
        }
        text += '\n';

        text += format_stack(ledger.stacks().pcs(shown.id), modules, symbolizer, options.max_frames);
        out << text;
    }

    // The stacks above counted only passing blocks; say how much that left out.
    if (sel.filtered && sel.shown_blocks < totals.live_blocks)
        out << "Filtered: showing " << sel.shown_blocks << " of "
            << count(totals.live_blocks, "outstanding block", "outstanding blocks") << " (" << sel.shown_bytes
            << " of " << count(totals.live_bytes, "byte", "bytes") << "): " << detail::describe_filters(options)
            << '\n';

    write_findings(out, ledger, modules, symbolizer, options);
    out << "Summary: ";
    write_summary(out, totals, options.show_unknown_frees);
    out << '\n';
    if (totals.inherited_blocks != 0)
        out << "Inherited at fork and still live: " << count(totals.inherited_bytes, "byte", "bytes") << " in "
            << count(totals.inherited_blocks, "block", "blocks") << " (the parent's allocations, not listed)\n";
}

}  // namespace leakcheck
