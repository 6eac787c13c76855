// The hooked allocator API and its accounting rules (glibc and libstdc++ semantics; valgrind's
// "in use at exit" is the oracle these are checked against).
#include "leakcheck/hooks.hpp"

#include <array>
#include <fstream>
#include <sstream>
#include <string>

namespace leakcheck {
namespace {

constexpr std::array kSpecs = {
    HookSpec{"malloc", HookKind::kMalloc},
    HookSpec{"calloc", HookKind::kCalloc},
    HookSpec{"realloc", HookKind::kRealloc},
    HookSpec{"reallocarray", HookKind::kReallocArray},
    HookSpec{"free", HookKind::kFree},
    HookSpec{"posix_memalign", HookKind::kPosixMemalign},
    HookSpec{"aligned_alloc", HookKind::kAlignedAlloc},
    HookSpec{"memalign", HookKind::kAlignedAlloc},
    HookSpec{"valloc", HookKind::kValloc},
    HookSpec{"pvalloc", HookKind::kPvalloc},
    // operator new / new[]: plain, nothrow, aligned, aligned nothrow.
    HookSpec{"_Znwm", HookKind::kNew},
    HookSpec{"_ZnwmRKSt9nothrow_t", HookKind::kNew},
    HookSpec{"_ZnwmSt11align_val_t", HookKind::kNew},
    HookSpec{"_ZnwmSt11align_val_tRKSt9nothrow_t", HookKind::kNew},
    HookSpec{"_Znam", HookKind::kNewArray},
    HookSpec{"_ZnamRKSt9nothrow_t", HookKind::kNewArray},
    HookSpec{"_ZnamSt11align_val_t", HookKind::kNewArray},
    HookSpec{"_ZnamSt11align_val_tRKSt9nothrow_t", HookKind::kNewArray},
    // operator delete / delete[]: plain, sized, aligned, sized aligned, nothrow, aligned nothrow.
    HookSpec{"_ZdlPv", HookKind::kDelete},
    HookSpec{"_ZdlPvm", HookKind::kDelete},
    HookSpec{"_ZdlPvSt11align_val_t", HookKind::kDelete},
    HookSpec{"_ZdlPvmSt11align_val_t", HookKind::kDelete},
    HookSpec{"_ZdlPvRKSt9nothrow_t", HookKind::kDelete},
    HookSpec{"_ZdlPvSt11align_val_tRKSt9nothrow_t", HookKind::kDelete},
    HookSpec{"_ZdaPv", HookKind::kDeleteArray},
    HookSpec{"_ZdaPvm", HookKind::kDeleteArray},
    HookSpec{"_ZdaPvSt11align_val_t", HookKind::kDeleteArray},
    HookSpec{"_ZdaPvmSt11align_val_t", HookKind::kDeleteArray},
    HookSpec{"_ZdaPvRKSt9nothrow_t", HookKind::kDeleteArray},
    HookSpec{"_ZdaPvSt11align_val_tRKSt9nothrow_t", HookKind::kDeleteArray},
    HookSpec{"mmap", HookKind::kMmap},
    HookSpec{"mmap64", HookKind::kMmap},
    HookSpec{"mremap", HookKind::kMremap},
    HookSpec{"munmap", HookKind::kMunmap},
    HookSpec{"shmat", HookKind::kShmat},
    HookSpec{"shmdt", HookKind::kShmdt},
    // setjmp and _setjmp jump to __sigsetjmp with the caller's return address on the stack.
    HookSpec{"__sigsetjmp", HookKind::kSetjmp},
    HookSpec{"__cxa_begin_catch", HookKind::kCatch},
};

// nmemb * size, or nullopt when it overflows (the call then fails and returns NULL anyway).
std::uint64_t product(std::uint64_t a, std::uint64_t b) noexcept {
    std::uint64_t r = 0;
    return __builtin_mul_overflow(a, b, &r) ? 0 : r;
}

}  // namespace

std::span<const HookSpec> hook_specs() noexcept { return kSpecs; }

std::optional<HookKind> hook_kind_from_name(std::string_view name) noexcept {
    static constexpr std::pair<std::string_view, HookKind> kNames[] = {
        {"malloc", HookKind::kMalloc},        {"calloc", HookKind::kCalloc},
        {"realloc", HookKind::kRealloc},      {"free", HookKind::kFree},
        {"new", HookKind::kNew},              {"new[]", HookKind::kNewArray},
        {"delete", HookKind::kDelete},        {"delete[]", HookKind::kDeleteArray},
        {"aligned_alloc", HookKind::kAlignedAlloc}, {"posix_memalign", HookKind::kPosixMemalign},
        {"mmap", HookKind::kMmap},            {"munmap", HookKind::kMunmap},
    };
    for (const auto& [n, kind] : kNames)
        if (n == name) return kind;
    return std::nullopt;
}

bool is_release(HookKind kind) noexcept {
    return kind == HookKind::kFree || kind == HookKind::kDelete || kind == HookKind::kDeleteArray ||
           kind == HookKind::kMunmap || kind == HookKind::kShmdt;
}

bool is_marker(HookKind kind) noexcept { return kind == HookKind::kSetjmp || kind == HookKind::kCatch; }

bool is_mapping(HookKind kind) noexcept {
    return kind == HookKind::kMmap || kind == HookKind::kMremap || kind == HookKind::kShmat ||
           kind == HookKind::kMunmap || kind == HookKind::kShmdt;
}

std::uint64_t sysv_shm_size(std::uint64_t shmid) {
    // Columns: key shmid perms size cpid lpid nattch ...
    std::ifstream in("/proc/sysvipc/shm");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        long long key = 0;
        std::uint64_t id = 0, size = 0;
        std::string perms;
        if (fields >> key >> id >> perms >> size && id == shmid) return size;
    }
    return 0;
}

FreeKind free_kind(HookKind kind) noexcept {
    switch (kind) {
        case HookKind::kDelete: return FreeKind::kDelete;
        case HookKind::kDeleteArray: return FreeKind::kDeleteArray;
        case HookKind::kRealloc:
        case HookKind::kReallocArray: return FreeKind::kRealloc;
        default: return FreeKind::kFree;
    }
}

AllocKind alloc_kind(HookKind kind) noexcept {
    switch (kind) {
        case HookKind::kCalloc: return AllocKind::kCalloc;
        case HookKind::kRealloc:
        case HookKind::kReallocArray: return AllocKind::kRealloc;
        case HookKind::kPosixMemalign:
        case HookKind::kAlignedAlloc:
        case HookKind::kValloc:
        case HookKind::kPvalloc: return AllocKind::kMemalign;
        case HookKind::kNew: return AllocKind::kNew;
        case HookKind::kNewArray: return AllocKind::kNewArray;
        default: return AllocKind::kMalloc;
    }
}

CallOutcome outcome_of(HookKind kind, std::span<const std::uint64_t, 3> a, std::uint64_t result,
                       std::uint64_t out_ptr, std::uint64_t page_size) noexcept {
    CallOutcome out;
    switch (kind) {
        case HookKind::kMalloc:
        case HookKind::kNew:
        case HookKind::kNewArray:
        case HookKind::kValloc:
            out.allocated = result;
            out.size = a[0];
            break;
        case HookKind::kPvalloc:
            out.allocated = result;
            out.size = a[0] == 0 ? page_size : (a[0] + page_size - 1) & ~(page_size - 1);
            break;
        case HookKind::kCalloc:
            out.allocated = result;
            out.size = product(a[0], a[1]);
            break;
        case HookKind::kAlignedAlloc:
            out.allocated = result;
            out.size = a[1];
            break;
        case HookKind::kPosixMemalign:
            out.allocated = result == 0 ? out_ptr : 0;
            out.size = a[2];
            break;
        case HookKind::kRealloc:
        case HookKind::kReallocArray: {
            const std::uint64_t old = a[0];
            const std::uint64_t size = kind == HookKind::kRealloc ? a[1] : product(a[1], a[2]);
            // glibc: realloc(p, 0) frees p and returns NULL; a NULL result otherwise means
            // failure and p stays live.
            const bool freed_old = old != 0 && (result != 0 || size == 0);
            if (kind == HookKind::kReallocArray && size == 0 && a[1] != 0 && a[2] != 0)
                break;  // overflow: the call failed, nothing changed
            out.freed = freed_old ? old : 0;
            out.allocated = result;
            out.size = size;
            break;
        }
        case HookKind::kFree:
        case HookKind::kDelete:
        case HookKind::kDeleteArray:
        case HookKind::kMunmap:
        case HookKind::kShmdt:
            out.freed = a[0];
            out.size = kind == HookKind::kMunmap ? a[1] : 0;
            break;
        case HookKind::kSetjmp:
        case HookKind::kCatch:
            break;  // no block
        case HookKind::kMmap:
        case HookKind::kShmat:
            out.allocated = result == ~std::uint64_t{0} ? 0 : result;
            out.size = kind == HookKind::kMmap ? a[1] : 0;  // shmat: the caller looks the size up
            break;
        case HookKind::kMremap:
            if (result != ~std::uint64_t{0}) {
                out.freed = a[0];
                out.freed_size = a[1];
                out.allocated = result;
                out.size = a[2];
            }
            break;
    }
    return out;
}

}  // namespace leakcheck
