// Release-family rules (as valgrind's memcheck applies them) and the bounded history of frees.
#include "leakcheck/findings.hpp"

namespace leakcheck {

bool release_matches(AllocKind alloc, FreeKind release) noexcept {
    if (release == FreeKind::kAny) return true;
    switch (alloc) {
        case AllocKind::kNew: return release == FreeKind::kDelete;
        case AllocKind::kNewArray: return release == FreeKind::kDeleteArray;
        default: return release == FreeKind::kFree || release == FreeKind::kRealloc;
    }
}

void FreedHistory::remember(RemoteAddr addr, const Entry& entry) {
    if (entries_.insert_or_assign(addr, entry).second) order_.push_back(addr);
    while (order_.size() > capacity_) {
        entries_.erase(order_.front());
        order_.pop_front();
    }
}

}  // namespace leakcheck
