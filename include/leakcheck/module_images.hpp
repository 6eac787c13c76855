// Parsed ELF images of the target's modules, opened once each and kept for the session.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "leakcheck/elf_image.hpp"
#include "leakcheck/module_map.hpp"

namespace leakcheck {

class ModuleImages {
public:
    // The module's image, or nullptr when its file cannot be read as ELF (warned once).
    const ElfImage* get(const Module& module);

private:
    std::unordered_map<const Module*, std::unique_ptr<ElfImage>> images_;
};

}  // namespace leakcheck
