// What a report shows, shared by the text and JSON writers: the stacks picked and ordered per
// ReportOptions, their totals (recomputed from the live blocks when filters are on), growth
// marks, and on request their blocks. Internal to the report files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "leakcheck/growth_tracker.hpp"
#include "leakcheck/ledger.hpp"
#include "leakcheck/report.hpp"

namespace leakcheck::detail {

struct ShownStack {
    StackId id = 0;
    std::uint64_t bytes = 0;   // of the blocks that pass the filters
    std::uint64_t blocks = 0;
    bool growing = false;
    std::vector<std::int64_t> deltas;         // when a tracker was given
    std::vector<const LiveBlock*> addresses;  // with show_addresses: passing blocks, by address
};

struct Selection {
    std::vector<ShownStack> stacks;  // in report order
    bool filtered = false;           // filters_active(options)
    // Over every stack: the blocks that pass the filters (the ledger's totals when none is on).
    std::uint64_t shown_blocks = 0;
    std::uint64_t shown_bytes = 0;
};

// Pointers in the result are valid until the ledger next changes.
Selection select_stacks(const Ledger& ledger, const ReportOptions& options, const GrowthTracker* growth);

// The active criteria, e.g. "older than 30000 ms, of 64 to 4096 bytes"; empty when none.
std::string describe_filters(const ReportOptions& options);

}  // namespace leakcheck::detail
