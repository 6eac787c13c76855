// Errors in how the program releases memory, found while accounting it: a block released
// twice, or released by the wrong family (new[] with delete, new with free, malloc with
// delete). Each keeps the stacks that tell the story.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "leakcheck/events.hpp"

namespace leakcheck {

struct Finding {
    enum class Type : std::uint8_t { kDoubleFree, kMismatchedFree };
    Type type;
    RemoteAddr addr;
    std::uint64_t size;
    StackId alloc_stack;
    StackId first_free_stack;  // double free: the earlier release (0 when not recorded)
    StackId free_stack;        // the offending release (0 when not recorded)
    AllocKind alloc_kind;
    FreeKind free_kind;
    Tid tid;
};

// Whether a release of this family may free a block of that one.
[[nodiscard]] bool release_matches(AllocKind alloc, FreeKind release) noexcept;

// The most recent releases, so a second release of the same address can be told from a
// release of something never allocated. Bounded: the oldest are forgotten first.
class FreedHistory {
public:
    struct Entry {
        std::uint64_t size;
        StackId alloc_stack;
        StackId free_stack;
        AllocKind alloc_kind;
    };
    explicit FreedHistory(std::size_t capacity = 65536) : capacity_(capacity) {}
    void remember(RemoteAddr addr, const Entry& entry);
    void forget(RemoteAddr addr) { entries_.erase(addr); }
    [[nodiscard]] const Entry* find(RemoteAddr addr) const {
        auto it = entries_.find(addr);
        return it == entries_.end() ? nullptr : &it->second;
    }

private:
    std::size_t capacity_;
    std::unordered_map<RemoteAddr, Entry> entries_;
    std::deque<RemoteAddr> order_;
};

// Findings in order, the first kMaxKept of them kept in full.
class Findings {
public:
    static constexpr std::size_t kMaxKept = 1000;
    void add(const Finding& finding) {
        ++count_;
        if (list_.size() < kMaxKept) list_.push_back(finding);
    }
    [[nodiscard]] const std::vector<Finding>& list() const noexcept { return list_; }
    [[nodiscard]] std::uint64_t count() const noexcept { return count_; }

private:
    std::vector<Finding> list_;
    std::uint64_t count_ = 0;
};

}  // namespace leakcheck
