// The real `vortex serve` binary with a tiny synthetic model, driven by Python scripts that use the
// official `openai` client and raw HTTP: the API contract (completions, chat, streaming, n > 1,
// stop strings, usage, logprobs, errors, disconnects, 429) and a bounded load test (64 concurrent
// streaming clients, every output equal to its solo run, no page leaked). The server is stopped
// with SIGTERM and must exit 0. Skips when the project's .venv (with openai) is missing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

std::string venv_python() { return std::string(VORTEX_SOURCE_DIR) + "/.venv/bin/python"; }

bool have_openai() {
  if (!std::filesystem::exists(venv_python())) return false;
  const std::string cmd = venv_python() + " -c 'import openai' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

/// A `vortex serve` child process; killed (SIGKILL) if still running when destroyed.
class ServerProcess {
 public:
  /// Starts `vortex serve --port 0 <args>` (the model defaults to synthetic:tiny-llama).
  explicit ServerProcess(const std::vector<std::string>& extra_args) {
    std::vector<std::string> args = {std::string(VORTEX_BINARY_DIR) + "/bin/vortex", "serve",
                                     "--port", "0"};
    if (std::find(extra_args.begin(), extra_args.end(), "--model") == extra_args.end()) {
      args.insert(args.end(), {"--model", "synthetic:tiny-llama"});
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    out_ = fdopen(out[0], "r");
    // Wait for "listening on http://HOST:PORT".
    const std::regex re("listening on http://[^:]+:([0-9]+)");
    char line[1024];
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (port_ == 0 && std::chrono::steady_clock::now() < deadline &&
           std::fgets(line, sizeof(line), out_) != nullptr) {
      std::cmatch m;
      if (std::regex_search(line, m, re)) port_ = std::stoi(m[1].str());
    }
  }
  ~ServerProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr) std::fclose(out_);
  }
  int port() const { return port_; }
  /// SIGTERM, then the exit status (or -1 if it did not exit within `timeout`).
  int terminate(std::chrono::seconds timeout) {
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  int port_ = 0;
  bool reaped_ = false;
};

int run_script(const std::string& script, int port, const std::string& args = "") {
  const std::string cmd = venv_python() + " " + std::string(VORTEX_SOURCE_DIR) +
                          "/tests/server/server/" + script +
                          " --base-url http://127.0.0.1:" + std::to_string(port) + " " + args;
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(ServeProcess, OpenAiContract) {
  if (!have_openai()) GTEST_SKIP() << "no .venv with the openai package (run scripts/setup.sh)";
  ServerProcess server({"--api-key", "test-key", "--flows", "block_topk,quest,running_avg",
                        "--kv-pages", "256", "--max-batch", "4", "--max-tokens-per-step", "64",
                        "--max-queue", "6", "--max-body-bytes", "65536"});
  ASSERT_GT(server.port(), 0) << "vortex serve did not start";
  EXPECT_EQ(run_script("openai_contract.py", server.port(), "--api-key test-key"), 0);
  EXPECT_EQ(server.terminate(30s), 0) << "graceful shutdown must exit 0";
}

TEST(ServeProcess, SixtyFourStreamingClients) {
  if (!have_openai()) GTEST_SKIP() << "no .venv with the openai package (run scripts/setup.sh)";
  // A pool small enough that 64 clients force preemption (4 pages of 16 tokens per request).
  ServerProcess server({"--kv-pages", "40", "--max-batch", "32", "--max-tokens-per-step", "256",
                        "--max-queue", "512"});
  ASSERT_GT(server.port(), 0) << "vortex serve did not start";
  EXPECT_EQ(run_script("load_test.py", server.port(),
                       "--clients 64 --requests-per-client 3 --expect-preemption"),
            0);
  EXPECT_EQ(server.terminate(30s), 0) << "graceful shutdown must exit 0";
}

TEST(ServeProcess, DefaultModelAnswersAChat) {
  if (!have_openai()) GTEST_SKIP() << "no .venv with the openai package (run scripts/setup.sh)";
  const char* dir = std::getenv("VORTEX_MODEL_DIR");
  const char* home = std::getenv("HOME");
  const std::string model_dir = dir != nullptr    ? dir
                                : home != nullptr ? std::string(home) + "/.cache/vortex/models"
                                                  : "";
  if (!std::filesystem::exists(model_dir + "/SmolLM2-135M-Instruct.Q4_1.gguf")) {
    GTEST_SKIP() << "SmolLM2-135M-Instruct.Q4_1.gguf not in " << model_dir
                 << " (run scripts/fetch_model.sh)";
  }
  ServerProcess server({"--model", "smollm2-135m", "--flows", "block_topk", "--kv-pages", "256"});
  ASSERT_GT(server.port(), 0) << "vortex serve did not start";
  EXPECT_EQ(run_script("smollm2_chat.py", server.port()), 0);
  EXPECT_EQ(server.terminate(30s), 0) << "graceful shutdown must exit 0";
}

}  // namespace
