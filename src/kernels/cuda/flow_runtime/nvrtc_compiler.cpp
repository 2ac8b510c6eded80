// NVRTC compilation of generated flow source for sm_90a, and compile_cached(): the disk cache in
// front of it.
#include <nvrtc.h>

#include <mutex>
#include <string>
#include <vector>

#include "vortex/compiler/codegen_cuda.h"
#include "vortex/core/logging.h"
#include "vortex/kernels/cuda/flow_runtime.h"

namespace vortex::gpu {
namespace {

Status nvrtc_status(nvrtcResult r, const char* what) {
  if (r == NVRTC_SUCCESS) return Status::ok();
  return internal_error(std::string(what) + ": " + nvrtcGetErrorString(r));
}

// Owns an nvrtcProgram.
class Program {
 public:
  ~Program() {
    if (prog_ != nullptr) (void)nvrtcDestroyProgram(&prog_);
  }
  nvrtcProgram* out() { return &prog_; }
  nvrtcProgram get() const { return prog_; }

 private:
  nvrtcProgram prog_ = nullptr;
};

}  // namespace

std::string_view flow_compile_arch() { return "sm_90a"; }

std::vector<std::string> flow_compile_flags() {
  return {"--gpu-architecture=sm_90a", "-std=c++17", "-lineinfo"};
}

std::string nvrtc_version() {
  int major = 0, minor = 0;
  if (nvrtcVersion(&major, &minor) != NVRTC_SUCCESS) return "unknown";
  return std::to_string(major) + "." + std::to_string(minor);
}

Expected<std::string> nvrtc_compile(std::string_view source, std::string_view name,
                                    const std::vector<std::string>& flags, std::string* log_out) {
  const std::string src(source), file = std::string(name) + ".cu";
  Program prog;
  VORTEX_RETURN_IF_ERROR(
      nvrtc_status(nvrtcCreateProgram(prog.out(), src.c_str(), file.c_str(), 0, nullptr, nullptr),
                   "nvrtcCreateProgram"));
  std::vector<const char*> opts;
  for (const std::string& f : flags) opts.push_back(f.c_str());
  const nvrtcResult compiled =
      nvrtcCompileProgram(prog.get(), static_cast<int>(opts.size()), opts.data());
  size_t log_size = 0;
  std::string log;
  if (nvrtcGetProgramLogSize(prog.get(), &log_size) == NVRTC_SUCCESS && log_size > 1) {
    log.resize(log_size);
    if (nvrtcGetProgramLog(prog.get(), log.data()) != NVRTC_SUCCESS) log.clear();
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  }
  if (compiled != NVRTC_SUCCESS) {
    if (log.size() > 6000) log = log.substr(0, 6000) + "\n...";
    return internal_error("NVRTC could not compile the generated CUDA of '" + std::string(name) +
                          "' (" + nvrtcGetErrorString(compiled) +
                          "); this is a code generator bug, please report it with the flow:\n" +
                          log);
  }
  if (log_out != nullptr) *log_out = log;
  size_t size = 0;
  VORTEX_RETURN_IF_ERROR(nvrtc_status(nvrtcGetCUBINSize(prog.get(), &size), "nvrtcGetCUBINSize"));
  if (size == 0) return internal_error("NVRTC produced no cubin for '" + std::string(name) + "'");
  std::string image(size, '\0');
  VORTEX_RETURN_IF_ERROR(nvrtc_status(nvrtcGetCUBIN(prog.get(), image.data()), "nvrtcGetCUBIN"));
  return image;
}

Expected<CompiledModule> compile_cached(std::string_view source, std::string_view name,
                                        const CubinCache& cache) {
  const std::vector<std::string> flags = flow_compile_flags();
  CompiledModule m;
  m.key = compiler::cuda_module_key(source, flow_compile_arch(), flags, nvrtc_version());
  if (auto hit = cache.load(m.key)) {
    m.image = std::move(*hit);
    m.from_cache = true;
    return m;
  }
  VORTEX_ASSIGN_OR_RETURN(m.image, nvrtc_compile(source, name, flags));
  if (Status s = cache.store(m.key, m.image); !s.is_ok()) {
    static std::once_flag warned;
    std::call_once(warned, [&] {
      log_message(LogLevel::kWarn, "compiled-kernel cache not written: " + s.message());
    });
  }
  return m;
}

}  // namespace vortex::gpu
