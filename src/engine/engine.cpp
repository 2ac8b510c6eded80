// Engine: the loop thread (schedule under the lock, run the step outside it, commit under the
// lock), request intake, metrics snapshots and graceful shutdown.
#include "vortex/engine/engine.h"

#include "vortex/core/check.h"
#include "vortex/core/logging.h"

namespace vortex::engine {

namespace {
constexpr auto kThroughputWindow = std::chrono::seconds(5);
}

Engine::Engine(std::unique_ptr<Backend> backend, EngineConfig config)
    : backend_(std::move(backend)), config_(std::move(config)) {
  scheduler_ = std::make_unique<Scheduler>(config_.scheduler, *backend_);
}

Expected<std::unique_ptr<Engine>> Engine::create(std::unique_ptr<Backend> backend,
                                                 EngineConfig config) {
  if (backend == nullptr) return invalid_argument("Engine::create: no backend");
  VORTEX_RETURN_IF_ERROR(config.scheduler.validate());
  std::unique_ptr<Engine> engine(new Engine(std::move(backend), std::move(config)));
  engine->thread_ = std::thread([e = engine.get()] { e->loop(); });
  return engine;
}

Engine::~Engine() { shutdown(std::chrono::milliseconds(0)); }

Expected<std::shared_ptr<RequestStream>> Engine::submit(GenerationRequest request,
                                                        std::shared_ptr<EventSignal> signal) {
  if (!accepting_.load()) return cancelled("the server is shutting down; not accepting requests");
  auto stream = std::make_shared<RequestStream>(next_id_.fetch_add(1), std::move(signal));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return cancelled("the server is shutting down; not accepting requests");
    VORTEX_ASSIGN_OR_RETURN(uint64_t id, scheduler_->add(std::move(request), stream));
    (void)id;
  }
  work_cv_.notify_one();
  return stream;
}

void Engine::cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    scheduler_->cancel(id);
  }
  work_cv_.notify_one();
}

void Engine::sample_throughput() {
  const auto now = std::chrono::steady_clock::now();
  throughput_.emplace_back(now, scheduler_->metrics().generated_tokens);
  while (throughput_.size() > 2 && now - throughput_.front().first > kThroughputWindow) {
    throughput_.pop_front();
  }
}

EngineMetrics Engine::metrics() {
  std::lock_guard<std::mutex> lock(mu_);
  sample_throughput();
  EngineMetrics m = scheduler_->metrics();
  const auto& [t0, n0] = throughput_.front();
  const auto& [t1, n1] = throughput_.back();
  const double dt = std::chrono::duration<double>(t1 - t0).count();
  m.tokens_per_second = dt > 0.0 ? static_cast<double>(n1 - n0) / dt : 0.0;
  return m;
}

std::string Engine::check_invariants() {
  std::lock_guard<std::mutex> lock(mu_);
  return scheduler_->check_invariants();
}

void Engine::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    work_cv_.wait(lock, [&] { return stop_ || scheduler_->has_work(); });
    if (stop_ && !scheduler_->has_work()) break;
    // Backend calls run without the lock: submit() and cancel() proceed meanwhile (they touch
    // only the queues and the cancel list, never the sequences of a scheduled step, and never
    // the backend: a new request reaches Backend::add_sequence at the next schedule(), here).
    bool progress = false;
    // Launch what can run now: the next step and, when overlapping, the one after it, which is
    // planned while the first runs.
    while (StepContext* ctx = scheduler_->schedule()) {
      lock.unlock();
      Status st = backend_->plan(ctx->plan);
      if (st.is_ok()) st = backend_->launch();
      lock.lock();
      if (!st.is_ok()) VORTEX_LOG_ERROR("engine step failed: {}", st.to_string());
      scheduler_->launched(st);
      progress = true;
      if (!st.is_ok()) break;
    }
    sample_throughput();
    if (scheduler_->num_in_flight() > 0) {
      lock.unlock();
      StepOutput out;
      const Status st = backend_->wait(&out);
      lock.lock();
      if (st.is_ok()) {
        scheduler_->commit(out);
      } else {
        VORTEX_LOG_ERROR("engine step failed: {}", st.to_string());
        scheduler_->fail_step(st);
      }
      progress = true;
    }
    if (!progress) {
      if (!scheduler_->has_work()) {
        idle_cv_.notify_all();
      } else {
        // Work exists but nothing fits this step; wait for a cancellation or arrival.
        work_cv_.wait_for(lock, std::chrono::milliseconds(5));
      }
      continue;
    }
    if (!scheduler_->has_work()) idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

void Engine::shutdown(std::chrono::milliseconds drain) {
  std::lock_guard<std::mutex> once(shutdown_mu_);
  accepting_.store(false);
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!thread_.joinable()) return;
    idle_cv_.wait_for(lock, drain, [&] { return !scheduler_->has_work(); });
    scheduler_->cancel_all();
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

}  // namespace vortex::engine
