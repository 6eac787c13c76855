// Picks a report's stacks. Unfiltered and by bytes it is the ledger's own top_stacks; with
// filters it walks the live blocks once to total each stack's passing blocks, because the
// ledger's per-stack numbers cannot be split by age or size.
#include "report_selection.hpp"

#include <algorithm>
#include <limits>

namespace leakcheck::detail {
namespace {

// The per-block test, with the options turned into plain bounds once.
struct BlockFilter {
    explicit BlockFilter(const Ledger& ledger, const ReportOptions& options)
        : min_size(options.min_size),
          max_size(options.max_size == 0 ? std::numeric_limits<std::uint64_t>::max() : options.max_size) {
        if (options.min_age_ms == 0 || options.now_ns == 0) return;
        by_age = true;
        // LiveBlock::time_ms counts whole ms from the epoch; older than min_age_ms means
        // time_ms + min_age_ms < now_ms, i.e. time_ms < now_ms - min_age_ms.
        const std::uint64_t epoch = ledger.epoch_ns();
        const std::uint64_t now_ms = options.now_ns > epoch ? (options.now_ns - epoch) / 1'000'000 : 0;
        before_ms = now_ms > options.min_age_ms ? now_ms - options.min_age_ms : 0;
    }

    [[nodiscard]] bool pass(const LiveBlock& b) const noexcept {
        return b.size >= min_size && b.size <= max_size && (!by_age || b.time_ms < before_ms);
    }

    std::uint64_t min_size;
    std::uint64_t max_size;
    bool by_age = false;
    std::uint64_t before_ms = 0;
};

struct Candidate {
    StackId id;
    std::uint64_t bytes;
    std::uint64_t blocks;
    std::int64_t growth;  // > 0 only for growing stacks under Sort::kGrowth
};

// Bigger first: growth (0 for all under kBytes), then bytes, blocks, and lower id, matching
// Ledger::top_stacks for the by-bytes order.
bool before(const Candidate& a, const Candidate& b) {
    if (a.growth != b.growth) return a.growth > b.growth;
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    if (a.blocks != b.blocks) return a.blocks > b.blocks;
    return a.id < b.id;
}

// Every stack with passing blocks; with filters off, straight from the ledger's stats.
std::vector<Candidate> candidates(const Ledger& ledger, const BlockFilter* filter, Selection& sel) {
    std::vector<Candidate> out;
    if (filter == nullptr) {
        const std::size_t ids = ledger.stacks().size();
        for (std::size_t id = 0; id < ids; ++id) {
            const StackStats& s = ledger.stack_stats(static_cast<StackId>(id));
            if (s.live_blocks > 0) out.push_back({static_cast<StackId>(id), s.live_bytes, s.live_blocks, 0});
        }
        return out;
    }
    struct Sum {
        std::uint64_t bytes = 0;
        std::uint64_t blocks = 0;
    };
    std::vector<Sum> sums(ledger.stacks().size());
    ledger.live().for_each([&](const LiveBlock& b) {
        if (!filter->pass(b)) return;
        if (b.stack >= sums.size()) sums.resize(std::size_t{b.stack} + 1);  // not from this table
        sums[b.stack].bytes += b.size;
        sums[b.stack].blocks += 1;
        sel.shown_bytes += b.size;
        sel.shown_blocks += 1;
    });
    for (std::size_t id = 0; id < sums.size(); ++id)
        if (sums[id].blocks > 0) out.push_back({static_cast<StackId>(id), sums[id].bytes, sums[id].blocks, 0});
    return out;
}

// One pass over the live blocks, however many there are, picking the passing ones of shown stacks.
void collect_addresses(const Ledger& ledger, const BlockFilter* filter, Selection& sel) {
    if (sel.stacks.empty()) return;
    constexpr std::uint32_t kNotShown = std::numeric_limits<std::uint32_t>::max();
    StackId max_id = 0;
    for (const ShownStack& s : sel.stacks) max_id = std::max(max_id, s.id);
    std::vector<std::uint32_t> slot(std::size_t{max_id} + 1, kNotShown);
    for (std::size_t i = 0; i < sel.stacks.size(); ++i) slot[sel.stacks[i].id] = static_cast<std::uint32_t>(i);
    ledger.live().for_each([&](const LiveBlock& b) {
        if (b.stack >= slot.size() || slot[b.stack] == kNotShown) return;
        if (filter != nullptr && !filter->pass(b)) return;
        sel.stacks[slot[b.stack]].addresses.push_back(&b);
    });
    for (ShownStack& s : sel.stacks)
        std::sort(s.addresses.begin(), s.addresses.end(),
                  [](const LiveBlock* a, const LiveBlock* b) { return a->addr < b->addr; });
}

}  // namespace

Selection select_stacks(const Ledger& ledger, const ReportOptions& options, const GrowthTracker* growth) {
    Selection sel;
    sel.filtered = filters_active(options);
    const BlockFilter filter(ledger, options);
    const BlockFilter* active = sel.filtered ? &filter : nullptr;

    std::vector<Candidate> top;
    if (active == nullptr && (options.sort == Sort::kBytes || growth == nullptr)) {
        // The common case needs no per-stack walk of our own.
        for (const StackId id : ledger.top_stacks(options.top)) {
            const StackStats& s = ledger.stack_stats(id);
            top.push_back({id, s.live_bytes, s.live_blocks, 0});
        }
    } else {
        top = candidates(ledger, active, sel);
        if (options.sort == Sort::kGrowth && growth != nullptr)
            for (Candidate& c : top)
                if (growth->growing(c.id)) c.growth = growth->growth(c.id);
        const auto n = static_cast<std::ptrdiff_t>(std::min(options.top, top.size()));
        std::partial_sort(top.begin(), top.begin() + n, top.end(), before);
        top.resize(static_cast<std::size_t>(n));
    }
    if (active == nullptr) {
        sel.shown_blocks = ledger.totals().live_blocks;
        sel.shown_bytes = ledger.totals().live_bytes;
    }

    for (const Candidate& c : top) {
        ShownStack s{c.id, c.bytes, c.blocks, false, {}, {}};
        if (growth != nullptr) {
            s.growing = growth->growing(c.id);
            s.deltas = growth->deltas(c.id);
        }
        sel.stacks.push_back(std::move(s));
    }
    if (options.show_addresses) collect_addresses(ledger, active, sel);
    return sel;
}

std::string describe_filters(const ReportOptions& options) {
    std::string s;
    const auto add = [&s](const std::string& part) {
        if (!s.empty()) s += ", ";
        s += part;
    };
    if (options.min_age_ms > 0 && options.now_ns != 0) add("older than " + std::to_string(options.min_age_ms) + " ms");
    const auto bytes = [](std::uint64_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); };
    if (options.min_size > 0 && options.max_size > 0)
        add("of " + std::to_string(options.min_size) + " to " + bytes(options.max_size));
    else if (options.min_size > 0)
        add("of at least " + bytes(options.min_size));
    else if (options.max_size > 0)
        add("of at most " + bytes(options.max_size));
    return s;
}

}  // namespace leakcheck::detail

namespace leakcheck {

bool filters_active(const ReportOptions& options) noexcept {
    return (options.min_age_ms > 0 && options.now_ns != 0) || options.min_size > 0 || options.max_size > 0;
}

}  // namespace leakcheck
