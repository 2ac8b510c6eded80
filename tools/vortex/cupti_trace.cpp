// KernelTracer: CUPTI activity buffers (CONCURRENT_KERNEL records) collected into KernelSpans.
#if defined(VORTEX_WITH_CUDA)

#include "cupti_trace.h"

#include <cupti.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <type_traits>

namespace vortex::tools {
namespace {

constexpr size_t kBufferBytes = size_t{8} << 20;

// CUPTI hands completed buffers to a plain function: the records go to one process-wide sink.
std::mutex sink_mutex;
std::vector<KernelSpan> sink;

using GetNextRecordFn = CUptiResult (*)(uint8_t*, size_t, CUpti_Activity**);
GetNextRecordFn get_next_record = nullptr;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer != nullptr ? kBufferBytes : 0;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  if (buffer == nullptr) return;
  CUpti_Activity* record = nullptr;
  std::vector<KernelSpan> spans;
  while (get_next_record != nullptr && get_next_record(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL &&
        record->kind != CUPTI_ACTIVITY_KIND_KERNEL) {
      continue;
    }
    // The leading fields read here keep their layout across the CUpti_ActivityKernel versions.
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    KernelSpan s;
    s.name = k->name != nullptr ? k->name : "?";
    s.start_ns = k->start;
    s.end_ns = k->end;
    s.stream = k->streamId;
    s.grid = static_cast<uint32_t>(k->gridX * k->gridY * k->gridZ);
    s.block = static_cast<uint32_t>(k->blockX * k->blockY * k->blockZ);
    spans.push_back(std::move(s));
  }
  std::free(buffer);
  std::lock_guard<std::mutex> lock(sink_mutex);
  sink.insert(sink.end(), std::make_move_iterator(spans.begin()),
              std::make_move_iterator(spans.end()));
}

}  // namespace

struct KernelTracer::Api {
  void* lib = nullptr;
  CUptiResult (*register_callbacks)(CUpti_BuffersCallbackRequestFunc,
                                    CUpti_BuffersCallbackCompleteFunc) = nullptr;
  CUptiResult (*enable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*disable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*flush_all)(uint32_t) = nullptr;
  CUptiResult (*result_string)(CUptiResult, const char**) = nullptr;

  Status check(CUptiResult r, const char* what) const {
    if (r == CUPTI_SUCCESS) return Status::ok();
    const char* msg = "unknown";
    if (result_string != nullptr) result_string(r, &msg);
    return internal_error(std::string("CUPTI ") + what + ": " + msg);
  }
};

Expected<std::unique_ptr<KernelTracer>> KernelTracer::create() {
  std::unique_ptr<KernelTracer> t(new KernelTracer());
  t->api_ = std::make_unique<Api>();
  Api& a = *t->api_;
  std::string tried;
  for (const char* name : {"libcupti.so.13", "libcupti.so"}) {
    a.lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (a.lib != nullptr) break;
    tried += std::string(tried.empty() ? "" : "; ") + dlerror();
  }
  if (a.lib == nullptr) {
    return not_found("kernel trace: CUPTI is not loadable (" + tried +
                     "); put the CUDA toolkit's libcupti (lib64 or extras/CUPTI/lib64) or the "
                     "nvidia-cuda-cupti wheel's on LD_LIBRARY_PATH");
  }
  const auto sym = [&](auto* fn, const char* name) {
    *fn = reinterpret_cast<std::remove_reference_t<decltype(*fn)>>(dlsym(a.lib, name));
    return *fn != nullptr;
  };
  if (!sym(&a.register_callbacks, "cuptiActivityRegisterCallbacks") ||
      !sym(&a.enable, "cuptiActivityEnable") || !sym(&a.disable, "cuptiActivityDisable") ||
      !sym(&a.flush_all, "cuptiActivityFlushAll") ||
      !sym(&get_next_record, "cuptiActivityGetNextRecord")) {
    return not_found("kernel trace: the CUPTI library lacks the activity API");
  }
  sym(&a.result_string, "cuptiGetResultString");
  VORTEX_RETURN_IF_ERROR(
      a.check(a.register_callbacks(buffer_requested, buffer_completed), "register buffers"));
  return t;
}

KernelTracer::~KernelTracer() {
  if (api_ == nullptr || api_->lib == nullptr) return;
  if (active_) {
    (void)api_->disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    (void)api_->flush_all(1);
  }
  // The library stays loaded: CUPTI keeps hooks in the driver for the life of the process.
}

Status KernelTracer::begin() {
  {
    std::lock_guard<std::mutex> lock(sink_mutex);
    sink.clear();
  }
  VORTEX_RETURN_IF_ERROR(
      api_->check(api_->enable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "enable kernel records"));
  active_ = true;
  return Status::ok();
}

Expected<std::vector<KernelSpan>> KernelTracer::end() {
  if (!active_) return invalid_argument("kernel trace: end() without begin()");
  active_ = false;
  VORTEX_RETURN_IF_ERROR(
      api_->check(api_->disable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "disable kernel records"));
  VORTEX_RETURN_IF_ERROR(api_->check(api_->flush_all(1), "flush"));
  std::vector<KernelSpan> out;
  {
    std::lock_guard<std::mutex> lock(sink_mutex);
    out.swap(sink);
  }
  std::sort(out.begin(), out.end(),
            [](const KernelSpan& x, const KernelSpan& y) { return x.start_ns < y.start_ns; });
  return out;
}

}  // namespace vortex::tools

#endif  // VORTEX_WITH_CUDA
