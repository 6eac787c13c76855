// The one place that says which kernel facilities are allowed.
#include "leakcheck/kernel_features.hpp"

namespace leakcheck {

KernelFeatures& kernel_features() noexcept {
    static KernelFeatures features;
    return features;
}

void use_legacy_kernel_features() noexcept {
    kernel_features() = KernelFeatures{false, false, false, false};
}

}  // namespace leakcheck
