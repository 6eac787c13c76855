// The JSON leak report: report_selection's stacks serialized with nlohmann::ordered_json, so
// keys come out in the documented order and 64-bit counts stay exact.
#include "leakcheck/json_report.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "leakcheck/json_events.hpp"
#include "leakcheck/leak_report.hpp"
#include "leakcheck/report_mappings.hpp"
#include "report_format.hpp"
#include "report_selection.hpp"

namespace leakcheck {
namespace {

using detail::Json;

}  // namespace

void write_json_report(std::ostream& out, const Ledger& ledger, const ModuleMap& modules,
                       Symbolizer& symbolizer, const ReportOptions& options, const GrowthTracker* growth,
                       const MappingLedger* mappings, const LeakScan* leaks) {
    const detail::Selection sel = detail::select_stacks(ledger, options, growth);
    const LedgerTotals& t = ledger.totals();

    Json doc = json_object("report");
    doc["time"] = options.timestamp == 0 ? Json(nullptr) : Json(static_cast<std::int64_t>(options.timestamp));
    if (options.pid != 0) doc["pid"] = options.pid;
    doc["final"] = options.last_report;
    doc["summary"] = {{"allocations", t.allocs},           {"alloc_bytes", t.alloc_bytes},
                      {"frees", t.frees},                  {"unknown_frees", t.unknown_frees},
                      {"missed_releases", t.missed_releases},
                      {"outstanding_bytes", t.live_bytes}, {"outstanding_blocks", t.live_blocks}};
    if (t.inherited_blocks != 0)
        doc["summary"]["inherited"] = {{"bytes", t.inherited_bytes}, {"blocks", t.inherited_blocks}};
    if (sel.filtered) {
        // The age bound only applies with a "now"; report 0 when it was off, like the option.
        const std::uint64_t min_age = options.now_ns != 0 ? options.min_age_ms : 0;
        doc["filter"] = {{"min_age_ms", min_age},
                         {"min_size", options.min_size},
                         {"max_size", options.max_size},
                         {"shown_blocks", sel.shown_blocks},
                         {"shown_bytes", sel.shown_bytes}};
    }

    Json stacks = Json::array();
    for (const detail::ShownStack& shown : sel.stacks) {
        Json s;
        s["id"] = shown.id;
        s["bytes"] = shown.bytes;
        s["blocks"] = shown.blocks;
        s["growing"] = shown.growing;
        if (growth != nullptr) s["deltas"] = shown.deltas;

        s["frames"] = detail::frames_to_json(ledger.stacks().pcs(shown.id), modules, symbolizer, options.max_frames);

        if (options.show_addresses) {
            Json addresses = Json::array();
            for (const LiveBlock* b : shown.addresses) addresses.push_back({{"addr", b->addr}, {"size", b->size}});
            s["addresses"] = std::move(addresses);
        }
        stacks.push_back(std::move(s));
    }
    doc["stacks"] = std::move(stacks);
    if (mappings) doc["mappings"] = mappings_to_json(*mappings, ledger.stacks(), modules, symbolizer, options);
    if (leaks && options.leak_check != ReportOptions::LeakCheck::kNo) doc["leaks"] = leak_json(*leaks);

    write_json_line(out, doc);
}

nlohmann::ordered_json stack_to_json(std::span<const RemoteAddr> pcs, const ModuleMap& modules,
                                     Symbolizer& symbolizer, std::size_t max_frames, bool first_is_pc) {
    return detail::frames_to_json(pcs, modules, symbolizer, max_frames, first_is_pc);
}

}  // namespace leakcheck
