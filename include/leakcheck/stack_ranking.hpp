// The order every report uses for stacks: most live bytes first, then most live blocks (or
// mappings), then the older stack id; only the first n are fully ordered.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "leakcheck/types.hpp"

namespace leakcheck {

// `per_stack` is indexed by StackId; `live_count(stats)` is its number of live items. Stacks
// with none are left out.
template <class Stats, class LiveCount>
std::vector<StackId> rank_stacks(const std::vector<Stats>& per_stack, std::size_t n, LiveCount live_count) {
    std::vector<StackId> ids;
    for (std::size_t id = 0; id < per_stack.size(); ++id)
        if (live_count(per_stack[id]) > 0) ids.push_back(static_cast<StackId>(id));
    const auto before = [&](StackId a, StackId b) {
        const Stats& x = per_stack[a];
        const Stats& y = per_stack[b];
        if (x.live_bytes != y.live_bytes) return x.live_bytes > y.live_bytes;
        if (live_count(x) != live_count(y)) return live_count(x) > live_count(y);
        return a < b;
    };
    // Reports show a handful out of possibly 100k stacks: order only the ones returned.
    if (n < ids.size()) {
        std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(), before);
        ids.resize(n);
    } else {
        std::sort(ids.begin(), ids.end(), before);
    }
    return ids;
}

}  // namespace leakcheck
