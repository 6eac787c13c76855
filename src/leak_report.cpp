// Per kind, blocks are summed by allocating stack (one pass over the classified blocks).
#include "leakcheck/leak_report.hpp"

#include <algorithm>
#include <map>
#include <sstream>

namespace leakcheck {
namespace {

struct KindStack {
    StackId stack = 0;
    LeakCount count;
};

// Stacks of one kind by bytes, then blocks, descending; ties by stack id.
std::vector<KindStack> stacks_of(const LeakScan& scan, LeakKind kind) {
    std::map<StackId, LeakCount> by_stack;
    for (const ClassifiedBlock& b : scan.blocks) {
        if (b.kind != kind) continue;
        LeakCount& c = by_stack[b.stack];
        c.bytes += b.size;
        ++c.blocks;
    }
    std::vector<KindStack> out;
    for (const auto& [stack, count] : by_stack) out.push_back({stack, count});
    std::sort(out.begin(), out.end(), [](const KindStack& a, const KindStack& b) {
        if (a.count.bytes != b.count.bytes) return a.count.bytes > b.count.bytes;
        if (a.count.blocks != b.count.blocks) return a.count.blocks > b.count.blocks;
        return a.stack < b.stack;
    });
    return out;
}

constexpr LeakKind kKinds[] = {LeakKind::kDefinite, LeakKind::kIndirect, LeakKind::kPossible, LeakKind::kReachable};

}  // namespace

std::string with_thousands(std::uint64_t n) {
    std::string digits = std::to_string(n);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::optional<unsigned> parse_leak_kinds(const std::string& list) {
    if (list == "all") return 0b1111u;
    if (list == "none") return 0u;
    unsigned mask = 0;
    std::istringstream in(list);
    std::string name;
    while (std::getline(in, name, ',')) {
        bool known = false;
        for (LeakKind k : kKinds) {
            if (name != leak_kind_name(k)) continue;
            mask |= 1u << static_cast<unsigned>(k);
            known = true;
        }
        if (!known) return std::nullopt;
    }
    return mask;
}

void write_leak_report(std::ostream& out, const LeakScan& scan, const StackTable& stacks, const ModuleMap& modules,
                       Symbolizer& symbolizer, const ReportOptions& options) {
    if (options.leak_check == ReportOptions::LeakCheck::kNo) return;
    if (options.leak_check == ReportOptions::LeakCheck::kFull) {
        for (LeakKind kind : kKinds) {
            if (!(options.leak_kinds & (1u << static_cast<unsigned>(kind)))) continue;
            const std::vector<KindStack> list = stacks_of(scan, kind);
            if (list.empty()) continue;
            std::string title = leak_kind_phrase(kind);
            title[0] = static_cast<char>(title[0] - 'a' + 'A');
            out << title << " blocks from " << list.size() << (list.size() == 1 ? " stack:\n" : " stacks:\n");
            for (std::size_t i = 0; i < list.size() && i < options.top; ++i) {
                out << '\t' << list[i].count.bytes << (list[i].count.bytes == 1 ? " byte" : " bytes") << " in "
                    << list[i].count.blocks << (list[i].count.blocks == 1 ? " block" : " blocks") << " from stack\n";
                out << format_stack(stacks.pcs(list[i].stack), modules, symbolizer, options.max_frames, 2);
            }
        }
    }
    out << "LEAK SUMMARY:\n";
    for (LeakKind kind : kKinds) {
        const std::string phrase = leak_kind_phrase(kind);
        const LeakCount& c = scan.count(kind);
        out << std::string(18 - phrase.size(), ' ') << phrase << ": " << with_thousands(c.bytes) << " bytes in "
            << with_thousands(c.blocks) << " blocks\n";
    }
}

nlohmann::json leak_json(const LeakScan& scan) {
    nlohmann::json doc = nlohmann::json::object();
    nlohmann::json list = nlohmann::json::array();
    for (LeakKind kind : kKinds) {
        const LeakCount& c = scan.count(kind);
        doc[leak_kind_name(kind)] = {{"bytes", c.bytes}, {"blocks", c.blocks}};
        for (const KindStack& s : stacks_of(scan, kind))
            list.push_back({{"id", s.stack}, {"kind", leak_kind_name(kind)}, {"bytes", s.count.bytes},
                            {"blocks", s.count.blocks}});
    }
    doc["stacks"] = std::move(list);
    return doc;
}

}  // namespace leakcheck
