// The hooked allocator API and its accounting rules (glibc and libstdc++ semantics; valgrind's
// "in use at exit" is the oracle these are checked against).
#include "leakcheck/hooks.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <string>

namespace leakcheck {
namespace {

using K = HookKind;
constexpr bool kPrefixable = true;

constexpr std::array kSpecs = {
    HookSpec{"malloc", K::kMalloc, kPrefixable},
    HookSpec{"calloc", K::kCalloc, kPrefixable},
    HookSpec{"realloc", K::kRealloc, kPrefixable},
    HookSpec{"reallocarray", K::kReallocArray, kPrefixable},
    HookSpec{"free", K::kFree, kPrefixable},
    HookSpec{"posix_memalign", K::kPosixMemalign, kPrefixable},
    HookSpec{"aligned_alloc", K::kAlignedAlloc, kPrefixable},
    HookSpec{"memalign", K::kAlignedAlloc, kPrefixable},
    HookSpec{"valloc", K::kValloc, kPrefixable},
    HookSpec{"pvalloc", K::kPvalloc, kPrefixable},
    // operator new / new[]: plain, nothrow, aligned, aligned nothrow.
    HookSpec{"_Znwm", K::kNew},
    HookSpec{"_ZnwmRKSt9nothrow_t", K::kNew},
    HookSpec{"_ZnwmSt11align_val_t", K::kNew},
    HookSpec{"_ZnwmSt11align_val_tRKSt9nothrow_t", K::kNew},
    HookSpec{"_Znam", K::kNewArray},
    HookSpec{"_ZnamRKSt9nothrow_t", K::kNewArray},
    HookSpec{"_ZnamSt11align_val_t", K::kNewArray},
    HookSpec{"_ZnamSt11align_val_tRKSt9nothrow_t", K::kNewArray},
    // operator delete / delete[]: plain, sized, aligned, sized aligned, nothrow, aligned nothrow.
    HookSpec{"_ZdlPv", K::kDelete},
    HookSpec{"_ZdlPvm", K::kDelete},
    HookSpec{"_ZdlPvSt11align_val_t", K::kDelete},
    HookSpec{"_ZdlPvmSt11align_val_t", K::kDelete},
    HookSpec{"_ZdlPvRKSt9nothrow_t", K::kDelete},
    HookSpec{"_ZdlPvSt11align_val_tRKSt9nothrow_t", K::kDelete},
    HookSpec{"_ZdaPv", K::kDeleteArray},
    HookSpec{"_ZdaPvm", K::kDeleteArray},
    HookSpec{"_ZdaPvSt11align_val_t", K::kDeleteArray},
    HookSpec{"_ZdaPvmSt11align_val_t", K::kDeleteArray},
    HookSpec{"_ZdaPvRKSt9nothrow_t", K::kDeleteArray},
    HookSpec{"_ZdaPvSt11align_val_tRKSt9nothrow_t", K::kDeleteArray},
    // jemalloc's non-standard API (flags select alignment, zeroing, arena, tcache).
    HookSpec{"mallocx", K::kMalloc, kPrefixable},           // (size, flags)
    HookSpec{"rallocx", K::kRealloc, kPrefixable},          // (ptr, size, flags)
    HookSpec{"xallocx", K::kXallocx, kPrefixable},          // (ptr, size, extra, flags)
    HookSpec{"sdallocx", K::kFree, kPrefixable},            // (ptr, size, flags)
    HookSpec{"dallocx", K::kFree, kPrefixable},             // (ptr, flags)
    // mimalloc's mi_ API. mi_new's blocks are released by mi_free, so they count as malloc's.
    HookSpec{"mi_malloc", K::kMalloc},
    HookSpec{"mi_malloc_small", K::kMalloc},
    HookSpec{"mi_zalloc", K::kMalloc},
    HookSpec{"mi_zalloc_small", K::kMalloc},
    HookSpec{"mi_malloc_aligned", K::kMalloc},              // (size, alignment)
    HookSpec{"mi_zalloc_aligned", K::kMalloc},
    HookSpec{"mi_new", K::kMalloc},
    HookSpec{"mi_new_nothrow", K::kMalloc},
    HookSpec{"mi_new_aligned", K::kMalloc},                 // (size, alignment)
    HookSpec{"mi_new_aligned_nothrow", K::kMalloc},
    HookSpec{"mi_calloc", K::kCalloc},
    HookSpec{"mi_mallocn", K::kCalloc},                     // (count, size), not zeroed
    HookSpec{"mi_calloc_aligned", K::kCalloc},              // (count, size, alignment)
    HookSpec{"mi_realloc", K::kRealloc},
    HookSpec{"mi_rezalloc", K::kRealloc},
    HookSpec{"mi_realloc_aligned", K::kRealloc},            // (ptr, size, alignment)
    HookSpec{"mi_rezalloc_aligned", K::kRealloc},
    HookSpec{"mi_reallocn", K::kReallocArray},              // (ptr, count, size)
    HookSpec{"mi_reallocarray", K::kReallocArray},
    HookSpec{"mi_reallocf", K::kReallocf},
    HookSpec{"mi_expand", K::kExpand},
    HookSpec{"mi_strdup", K::kStrdup},
    HookSpec{"mi_strndup", K::kStrdup},
    HookSpec{"mi_aligned_alloc", K::kAlignedAlloc},         // (alignment, size)
    HookSpec{"mi_memalign", K::kAlignedAlloc},
    HookSpec{"mi_posix_memalign", K::kPosixMemalign},
    HookSpec{"mi_valloc", K::kValloc},
    HookSpec{"mi_pvalloc", K::kPvalloc},
    HookSpec{"mi_free", K::kFree},
    HookSpec{"mi_cfree", K::kFree},
    HookSpec{"mi_free_size", K::kFree},                     // (ptr, size)
    HookSpec{"mi_free_aligned", K::kFree},                  // (ptr, alignment)
    HookSpec{"mi_free_size_aligned", K::kFree},
    // tcmalloc's tc_ API (gperftools); tc_malloc and friends are the same code as malloc.
    HookSpec{"tc_malloc", K::kMalloc},
    HookSpec{"tc_malloc_skip_new_handler", K::kMalloc},
    HookSpec{"tc_calloc", K::kCalloc},
    HookSpec{"tc_realloc", K::kRealloc},
    HookSpec{"tc_memalign", K::kAlignedAlloc},
    HookSpec{"tc_posix_memalign", K::kPosixMemalign},
    HookSpec{"tc_valloc", K::kValloc},
    HookSpec{"tc_pvalloc", K::kPvalloc},
    HookSpec{"tc_free", K::kFree},
    HookSpec{"tc_cfree", K::kFree},
    HookSpec{"tc_free_sized", K::kFree},                    // (ptr, size)
    HookSpec{"tc_new", K::kNew},
    HookSpec{"tc_new_nothrow", K::kNew},
    HookSpec{"tc_new_aligned", K::kNew},                    // (size, alignment)
    HookSpec{"tc_new_aligned_nothrow", K::kNew},
    HookSpec{"tc_newarray", K::kNewArray},
    HookSpec{"tc_newarray_nothrow", K::kNewArray},
    HookSpec{"tc_newarray_aligned", K::kNewArray},
    HookSpec{"tc_newarray_aligned_nothrow", K::kNewArray},
    HookSpec{"tc_delete", K::kDelete},
    HookSpec{"tc_delete_nothrow", K::kDelete},
    HookSpec{"tc_delete_sized", K::kDelete},
    HookSpec{"tc_delete_aligned", K::kDelete},
    HookSpec{"tc_delete_aligned_nothrow", K::kDelete},
    HookSpec{"tc_delete_sized_aligned", K::kDelete},
    HookSpec{"tc_deletearray", K::kDeleteArray},
    HookSpec{"tc_deletearray_nothrow", K::kDeleteArray},
    HookSpec{"tc_deletearray_sized", K::kDeleteArray},
    HookSpec{"tc_deletearray_aligned", K::kDeleteArray},
    HookSpec{"tc_deletearray_aligned_nothrow", K::kDeleteArray},
    HookSpec{"tc_deletearray_sized_aligned", K::kDeleteArray},
    HookSpec{"mmap", K::kMmap},
    HookSpec{"mmap64", K::kMmap},
    HookSpec{"mremap", K::kMremap},
    HookSpec{"munmap", K::kMunmap},
    HookSpec{"shmat", K::kShmat},
    HookSpec{"shmdt", K::kShmdt},
    // setjmp and _setjmp jump to __sigsetjmp with the caller's return address on the stack.
    HookSpec{"__sigsetjmp", K::kSetjmp},
    HookSpec{"__cxa_begin_catch", K::kCatch},
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

bool releases_at_entry(HookKind kind) noexcept {
    return kind == HookKind::kRealloc || kind == HookKind::kReallocArray || kind == HookKind::kReallocf;
}

bool is_resize(HookKind kind) noexcept { return kind == HookKind::kXallocx || kind == HookKind::kExpand; }

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
        case HookKind::kReallocArray:
        case HookKind::kReallocf: return FreeKind::kRealloc;
        default: return FreeKind::kFree;
    }
}

AllocKind alloc_kind(HookKind kind) noexcept {
    switch (kind) {
        case HookKind::kCalloc: return AllocKind::kCalloc;
        case HookKind::kRealloc:
        case HookKind::kReallocArray:
        case HookKind::kReallocf: return AllocKind::kRealloc;
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
        case HookKind::kReallocArray:
        case HookKind::kReallocf: {
            const std::uint64_t old = a[0];
            const std::uint64_t size = kind == HookKind::kReallocArray ? product(a[1], a[2]) : a[1];
            // glibc: realloc(p, 0) frees p and returns NULL; a NULL result otherwise means
            // failure and p stays live (but for mi_reallocf, which frees it anyway).
            const bool freed_old = old != 0 && (result != 0 || size == 0 || kind == HookKind::kReallocf);
            if (kind == HookKind::kReallocArray && size == 0 && a[1] != 0 && a[2] != 0)
                break;  // overflow: the call failed, nothing changed
            out.freed = freed_old ? old : 0;
            out.allocated = result;
            out.size = size;
            break;
        }
        case HookKind::kStrdup:
            out.allocated = result;  // the caller reads the copy's length
            break;
        case HookKind::kXallocx:
            // The usable size after the call: at least `size` when the resize succeeded (up to
            // size + extra); the old usable size, smaller than `size`, when it could not grow.
            if (a[0] != 0 && result >= a[1]) {
                out.resized = a[0];
                out.size = std::min(result, a[1] + a[2] < a[1] ? result : a[1] + a[2]);
            }
            break;
        case HookKind::kExpand:
            if (a[0] != 0 && result == a[0]) {
                out.resized = a[0];
                out.size = a[1];
            }
            break;
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
