// The mappings section of the reports: MappingLedger's top stacks, their frames symbolized by
// the heap report's own code (only the shown stacks' PCs), optionally each mapping's range,
// then the mapping totals; as text after the heap report, or as JSON for the JSON report.
#include "leakcheck/report_mappings.hpp"

#include "report_format.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace leakcheck {
namespace {

using detail::Json;

const char* kind_name(MapKind kind) {
    return kind == MapKind::kSharedMemory ? "shm" : "mmap";
}

struct ShownStack {
    StackId id = 0;
    const MappingStackStats* stats = nullptr;
    std::vector<const Mapping*> mappings;  // with show_addresses, by address
};

// The stacks a report shows, in order, and on request their mappings: one pass over the live
// mappings, which already come by address.
std::vector<ShownStack> select(const MappingLedger& ledger, const ReportOptions& options) {
    std::vector<ShownStack> shown;
    for (const StackId id : ledger.top_stacks(options.top)) shown.push_back({id, &ledger.stack_stats(id), {}});
    if (options.show_addresses && !shown.empty()) {
        std::unordered_map<StackId, std::size_t> index;
        for (std::size_t i = 0; i < shown.size(); ++i) index.emplace(shown[i].id, i);
        ledger.for_each([&](const Mapping& m) {
            if (const auto it = index.find(m.stack); it != index.end()) shown[it->second].mappings.push_back(&m);
        });
    }
    return shown;
}

}  // namespace

using detail::count;
using detail::hex;

void write_mapping_summary(std::ostream& out, const MappingTotals& totals) {
    out << totals.maps << " mapped (" << count(totals.map_bytes, "byte", "bytes") << "), " << totals.unmaps
        << " unmapped, " << count(totals.live_bytes, "byte", "bytes") << " in "
        << count(totals.live_mappings, "mapping", "mappings") << " outstanding";
}

void write_mapping_report(std::ostream& out, const MappingLedger& mappings, const StackTable& stacks,
                          const ModuleMap& modules, Symbolizer& symbolizer, const ReportOptions& options) {
    const MappingTotals& totals = mappings.totals();
    if (totals.maps == 0) return;  // a program that never maps: its report stays as it was

    if (totals.live_mappings > 0) out << "Top " << options.top << " stacks with outstanding mappings:\n";
    std::string text;  // one stack at a time, as the heap report
    for (const ShownStack& shown : select(mappings, options)) {
        text.clear();
        for (const Mapping* m : shown.mappings)
            text += "\taddr = " + hex(m->start) + " size = " + std::to_string(m->length()) + " (" +
                    kind_name(m->kind) + ")\n";
        text += "\t" + count(shown.stats->live_bytes, "byte", "bytes") + " in " +
                count(shown.stats->live_mappings, "mapping", "mappings") + " from stack\n";
        text += format_stack(stacks.pcs(shown.id), modules, symbolizer, options.max_frames);
        out << text;
    }

    out << "Mappings: ";
    write_mapping_summary(out, totals);
    out << '\n';
}

Json mappings_to_json(const MappingLedger& mappings, const StackTable& stacks, const ModuleMap& modules,
                      Symbolizer& symbolizer, const ReportOptions& options) {
    const MappingTotals& t = mappings.totals();
    Json doc;
    doc["summary"] = {{"mapped", t.maps},
                      {"mapped_bytes", t.map_bytes},
                      {"unmapped", t.unmaps},
                      {"outstanding_bytes", t.live_bytes},
                      {"outstanding_mappings", t.live_mappings}};

    Json list = Json::array();
    for (const ShownStack& shown : select(mappings, options)) {
        Json s;
        s["id"] = shown.id;
        s["bytes"] = shown.stats->live_bytes;
        s["mappings"] = shown.stats->live_mappings;
        s["frames"] = detail::frames_to_json(stacks.pcs(shown.id), modules, symbolizer, options.max_frames);
        if (options.show_addresses) {
            Json addresses = Json::array();
            for (const Mapping* m : shown.mappings)
                addresses.push_back({{"addr", m->start}, {"size", m->length()}, {"kind", kind_name(m->kind)}});
            s["addresses"] = std::move(addresses);
        }
        list.push_back(std::move(s));
    }
    doc["stacks"] = std::move(list);
    return doc;
}

}  // namespace leakcheck
