// Stand-in for make_synthetic_checkpoint while src/model/synthetic.cpp is not in the tree
// (CMakeLists.txt compiles this file only then): reports that synthetic models are not built.
#include "vortex/model/synthetic.h"

namespace vortex {

Expected<Checkpoint> make_synthetic_checkpoint(const std::string& preset, uint64_t seed) {
  (void)seed;
  return unsupported("synthetic model '" + preset +
                     "' requested, but this build has no synthetic checkpoints "
                     "(src/model/synthetic.cpp is missing)");
}

}  // namespace vortex
