// Driver API entry points resolved once through the CUDA runtime, and the module / launch helpers
// of the flow runtime.
#include "cuda_module.h"

#include <cudaTypedefs.h>

#include <mutex>
#include <string>

#include "vortex/kernels/cuda/launch.h"

namespace vortex::gpu::detail {
namespace {

struct DriverApi {
  PFN_cuModuleLoadData_v2000 module_load_data = nullptr;
  PFN_cuModuleUnload_v2000 module_unload = nullptr;
  PFN_cuModuleGetFunction_v2000 module_get_function = nullptr;
  PFN_cuFuncSetAttribute_v9000 func_set_attribute = nullptr;
  PFN_cuOccupancyMaxActiveBlocksPerMultiprocessor_v6050 occupancy = nullptr;
  PFN_cuLaunchKernelEx_v11060 launch_kernel_ex = nullptr;  // PDL launches
  PFN_cuGetErrorName_v6000 error_name = nullptr;
  Status status;  // why the API is unavailable
};

template <class Fn>
Status resolve(const char* symbol, Fn* fn) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  const cudaError_t err =
      cudaGetDriverEntryPointByVersion(symbol, &p, 12000, cudaEnableDefault, &found);
  if (err != cudaSuccess || found != cudaDriverEntryPointSuccess || p == nullptr) {
    (void)cudaGetLastError();
    return unsupported(std::string("the CUDA driver API entry point ") + symbol +
                       " is unavailable (" + cudaGetErrorString(err) +
                       "); a CUDA 12+ driver and a GPU are needed to run generated flows");
  }
  *fn = reinterpret_cast<Fn>(p);
  return Status::ok();
}

const DriverApi& api() {
  static DriverApi a;
  static std::once_flag once;
  std::call_once(once, [] {
    Status s = resolve("cuModuleLoadData", &a.module_load_data);
    if (s.is_ok()) s = resolve("cuModuleUnload", &a.module_unload);
    if (s.is_ok()) s = resolve("cuModuleGetFunction", &a.module_get_function);
    if (s.is_ok()) s = resolve("cuFuncSetAttribute", &a.func_set_attribute);
    if (s.is_ok()) s = resolve("cuOccupancyMaxActiveBlocksPerMultiprocessor", &a.occupancy);
    if (s.is_ok()) s = resolve("cuLaunchKernelEx", &a.launch_kernel_ex);
    if (s.is_ok()) s = resolve("cuGetErrorName", &a.error_name);
    a.status = s;
  });
  return a;
}

Status cu_status(CUresult r, const std::string& what) {
  if (r == CUDA_SUCCESS) return Status::ok();
  const char* name = "?";
  if (api().error_name != nullptr) api().error_name(r, &name);
  const StatusCode code =
      r == CUDA_ERROR_OUT_OF_MEMORY ? StatusCode::kOutOfMemory : StatusCode::kInternal;
  return Status(code,
                what + ": " + name + " (CUresult " + std::to_string(static_cast<int>(r)) + ")");
}

}  // namespace

Expected<CudaModule> CudaModule::load(const std::string& image) {
  VORTEX_RETURN_IF_ERROR(api().status);
  CudaModule m;
  VORTEX_RETURN_IF_ERROR(
      cu_status(api().module_load_data(&m.module_, image.data()), "cuModuleLoadData"));
  return m;
}

CudaModule::~CudaModule() {
  if (module_ != nullptr) (void)api().module_unload(module_);  // fails only at context teardown
}

CudaModule& CudaModule::operator=(CudaModule&& o) noexcept {
  if (this != &o) {
    if (module_ != nullptr) (void)api().module_unload(module_);
    module_ = o.module_;
    o.module_ = nullptr;
  }
  return *this;
}

Expected<CUfunction> CudaModule::function(const std::string& name) const {
  CUfunction f = nullptr;
  VORTEX_RETURN_IF_ERROR(cu_status(api().module_get_function(&f, module_, name.c_str()),
                                   "cuModuleGetFunction(" + name + ")"));
  return f;
}

Status set_dynamic_smem(CUfunction f, int bytes) {
  VORTEX_RETURN_IF_ERROR(api().status);
  return cu_status(
      api().func_set_attribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes),
      "cuFuncSetAttribute(max dynamic shared memory " + std::to_string(bytes) + ")");
}

Expected<int> resident_ctas_per_sm(CUfunction f, int threads, int smem) {
  VORTEX_RETURN_IF_ERROR(api().status);
  int n = 0;
  VORTEX_RETURN_IF_ERROR(cu_status(api().occupancy(&n, f, threads, static_cast<size_t>(smem)),
                                   "cuOccupancyMaxActiveBlocksPerMultiprocessor"));
  return n;
}

Status launch(CUfunction f, int grid, int threads, int smem, cudaStream_t stream, void** params,
              const char* what) {
  // Generated kernels start with vx_pdl_enter(), so they take PDL launches like the built-in
  // kernels (vortex/kernels/cuda/launch.h).
  CUlaunchAttribute attr = {};
  attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  attr.value.programmaticStreamSerializationAllowed = 1;
  CUlaunchConfig config = {};
  config.gridDimX = static_cast<unsigned>(grid);
  config.gridDimY = 1;
  config.gridDimZ = 1;
  config.blockDimX = static_cast<unsigned>(threads);
  config.blockDimY = 1;
  config.blockDimZ = 1;
  config.sharedMemBytes = static_cast<unsigned>(smem);
  config.hStream = reinterpret_cast<CUstream>(stream);
  config.attrs = &attr;
  config.numAttrs = pdl_enabled() ? 1 : 0;
  return cu_status(api().launch_kernel_ex(&config, f, params, nullptr),
                   std::string("launching ") + what);
}

}  // namespace vortex::gpu::detail
