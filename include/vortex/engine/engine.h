// Engine: the serving loop. Owns a Backend and a Scheduler and runs steps on its own thread;
// requests come in from any thread (submit / cancel) and their events go out through
// RequestStreams. Host work (accepting requests, cancellations) overlaps the backend's step: the
// scheduler lock is held only while planning and committing, not while the step runs. With
// SchedulerConfig::overlap the loop also plans and launches step N+1 before waiting for step N.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "vortex/core/status.h"
#include "vortex/engine/backend.h"
#include "vortex/engine/metrics.h"
#include "vortex/engine/request.h"
#include "vortex/engine/scheduler.h"

namespace vortex::engine {

struct EngineConfig {
  SchedulerConfig scheduler;
};

class Engine {
 public:
  /// Starts the loop thread. The backend's pool is what admission counts.
  static Expected<std::unique_ptr<Engine>> create(std::unique_ptr<Backend> backend,
                                                  EngineConfig config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const BackendInfo& info() const { return backend_->info(); }
  const EngineConfig& config() const { return config_; }

  /// Queues a request. Errors: kInvalidArgument (bad request: too long, bad ids, ...),
  /// kResourceExhausted (queue full), kCancelled (shutting down).
  /// `signal`, when given, is notified on every event of the request (for consumers that wait on
  /// several requests at once).
  Expected<std::shared_ptr<RequestStream>> submit(GenerationRequest request,
                                                  std::shared_ptr<EventSignal> signal = nullptr);
  /// Cancels a request; its pages are freed within one step. Unknown ids are ignored.
  void cancel(uint64_t id);
  /// A consistent snapshot of the metrics (gauges, counters, histograms, tokens/s).
  EngineMetrics metrics();
  /// The scheduler's ownership audit (see Scheduler::check_invariants); "" when consistent.
  std::string check_invariants();

  /// Stops accepting requests, lets running ones finish for up to `drain`, cancels the rest, and
  /// stops the loop thread. Idempotent.
  void shutdown(std::chrono::milliseconds drain);
  bool accepting() const { return accepting_.load(); }

 private:
  Engine(std::unique_ptr<Backend> backend, EngineConfig config);
  void loop();
  void sample_throughput();  // under mu_

  std::unique_ptr<Backend> backend_;  // declared before scheduler_: outlives it
  EngineConfig config_;
  std::unique_ptr<Scheduler> scheduler_;

  std::mutex shutdown_mu_;           // serializes shutdown()
  std::mutex mu_;                    // guards scheduler_ and the fields below
  std::condition_variable work_cv_;  // new work or stop
  std::condition_variable idle_cv_;  // the scheduler ran out of work
  bool stop_ = false;
  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> next_id_{1};
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> throughput_;
  std::thread thread_;
};

}  // namespace vortex::engine
