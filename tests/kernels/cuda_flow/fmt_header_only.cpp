// The only fmt function this test binary reaches (fmt::vformat, through vortex logging in the flow
// runtime) compiled from fmt's installed headers in header-only mode, so that the GPU binary needs
// no libfmt.so on the GPU machine (the linker's --as-needed then drops it; check with ldd).
#define FMT_HEADER_ONLY
#include <fmt/format.h>

#include <string>

namespace vortex::flow_gpu_test {

// Odr-uses fmt::vformat so that its (inline, header-only) definition is emitted here.
std::string fmt_header_only_anchor() { return fmt::vformat("{}", fmt::make_format_args(0)); }

}  // namespace vortex::flow_gpu_test
