// The leak report: picks the top stacks from the ledger, symbolizes only their PCs, and prints
// them memleak-style, optionally with each outstanding block's address, then the totals.
#include "leakcheck/report.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string_view>

namespace leakcheck {
namespace {

std::string hex(std::uint64_t v) {
    char buf[16];
    const auto res = std::to_chars(buf, buf + sizeof buf, v, 16);
    return std::string(buf, res.ptr);
}

// "1 block", "2 blocks": counts stay exact, only the noun follows them.
std::string count(std::uint64_t n, std::string_view one, std::string_view many) {
    std::string s = std::to_string(n);
    s += ' ';
    s += n == 1 ? one : many;
    return s;
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
    if (!show_unknown_frees) return;
    if (totals.unknown_frees == 1)
        out << ", 1 free of an unknown block";
    else if (totals.unknown_frees > 1)
        out << ", " << totals.unknown_frees << " frees of unknown blocks";
}

void write_report(std::ostream& out, const Ledger& ledger, const ModuleMap& modules,
                  Symbolizer& symbolizer, const ReportOptions& options) {
    std::vector<StackId> top;
    if (ledger.live().size() == 0) {
        out << "No outstanding allocations.\n";
    } else {
        out << "Top " << options.top << " stacks with outstanding allocations:\n";
        top = ledger.top_stacks(options.top);
    }

    // One pass over the live blocks, however many there are, picking those of shown stacks.
    std::vector<std::vector<const LiveBlock*>> blocks(top.size());
    if (options.show_addresses && !top.empty()) {
        constexpr std::uint32_t kNotShown = std::numeric_limits<std::uint32_t>::max();
        StackId max_id = *std::max_element(top.begin(), top.end());
        std::vector<std::uint32_t> slot(std::size_t{max_id} + 1, kNotShown);
        for (std::size_t i = 0; i < top.size(); ++i) slot[top[i]] = static_cast<std::uint32_t>(i);
        ledger.live().for_each([&](const LiveBlock& b) {
            if (b.stack < slot.size() && slot[b.stack] != kNotShown) blocks[slot[b.stack]].push_back(&b);
        });
        for (auto& list : blocks)
            std::sort(list.begin(), list.end(), [](const LiveBlock* a, const LiveBlock* b) { return a->addr < b->addr; });
    }

    std::string text;  // one stack at a time: fewer stream calls for large reports
    for (std::size_t i = 0; i < top.size(); ++i) {
        text.clear();
        for (const LiveBlock* b : blocks[i])
            text += "\taddr = " + hex(b->addr) + " size = " + std::to_string(b->size) + "\n";
        const StackStats& stats = ledger.stack_stats(top[i]);
        text += "\t" + count(stats.live_bytes, "byte", "bytes") + " in " +
                count(stats.live_blocks, "allocation", "allocations") + " from stack\n";

        const std::span<const RemoteAddr> pcs = ledger.stacks().pcs(top[i]);
        if (pcs.empty()) text += "\t\t(no stack recorded)\n";
        std::size_t number = 0;
        for (const RemoteAddr pc : pcs.first(std::min(pcs.size(), options.max_frames))) {
            // Every recorded PC is a return address, the first one included: it is where the
            // allocator returns to in its caller.
            const Location& loc = symbolizer.symbolize(modules.find(pc), pc, true);
            for (const SourceFrame& frame : loc.frames)
                text += "\t\t#" + std::to_string(number++) + " " + format_frame(loc, frame) + "\n";
        }
        out << text;
    }

    out << "Summary: ";
    write_summary(out, ledger.totals(), options.show_unknown_frees);
    out << '\n';
}

}  // namespace leakcheck
