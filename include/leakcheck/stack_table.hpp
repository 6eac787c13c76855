// Deduplicated call stacks: each distinct sequence of PCs is stored once and named by a StackId.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "leakcheck/types.hpp"

namespace leakcheck {

class StackTable {
public:
    StackTable();
    // Returns the id of this sequence of PCs, adding it when new. An empty span gets id 0.
    StackId intern(std::span<const RemoteAddr> pcs);
    // The PCs of a stack; empty for id 0.
    [[nodiscard]] std::span<const RemoteAddr> pcs(StackId id) const;
    // Number of ids handed out, including 0.
    [[nodiscard]] std::size_t size() const noexcept { return offsets_.size() - 1; }
    [[nodiscard]] std::size_t memory_bytes() const noexcept;

private:
    std::uint64_t hash(std::span<const RemoteAddr> pcs) const noexcept;
    void grow_index();

    std::vector<RemoteAddr> pcs_;          // all stacks back to back
    std::vector<std::uint32_t> offsets_;   // stack i is pcs_[offsets_[i] .. offsets_[i+1])
    std::vector<std::uint64_t> hashes_;    // per stack
    std::vector<StackId> index_;           // open addressing over ids; 0 = empty slot
};

}  // namespace leakcheck
