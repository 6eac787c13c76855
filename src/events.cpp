// Names of allocation and release kinds, as reports and diagnostics print them: the C or C++
// spelling of the call family that produced the event.
#include "leakcheck/events.hpp"

namespace leakcheck {

const char* to_string(AllocKind kind) noexcept {
    switch (kind) {
    case AllocKind::kMalloc: return "malloc";
    case AllocKind::kCalloc: return "calloc";
    case AllocKind::kRealloc: return "realloc";
    case AllocKind::kMemalign: return "memalign";
    case AllocKind::kNew: return "new";
    case AllocKind::kNewArray: return "new[]";
    }
    // Only reachable through a corrupted value; a name still beats a crash in a report.
    return "?";
}

const char* to_string(FreeKind kind) noexcept {
    switch (kind) {
    case FreeKind::kFree: return "free";
    case FreeKind::kRealloc: return "realloc";
    case FreeKind::kDelete: return "delete";
    case FreeKind::kDeleteArray: return "delete[]";
    case FreeKind::kAny: return "free/delete";
    }
    return "?";
}

}  // namespace leakcheck
