// Opens each module's ELF file once; a file that cannot be read is remembered as such.
#include "leakcheck/module_images.hpp"

#include "leakcheck/log.hpp"

namespace leakcheck {

const ElfImage* ModuleImages::get(const Module& module) {
    auto it = images_.find(&module);
    if (it != images_.end()) return it->second.get();
    std::string why;
    auto image = ElfImage::open(module.open_path, &why);
    if (!image) warn("cannot read " + module.path + " (" + why + "); its frames show as module+offset");
    else if (!image->damage().empty())
        warn("damaged ELF file " + module.path + " (" + image->damage() + "); its frames show as module+offset");
    return images_.emplace(&module, std::move(image)).first->second.get();
}

}  // namespace leakcheck
