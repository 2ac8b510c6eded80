// `vortex generate`: runs one prompt through a model on the CPU reference engine, dense or with a
// sparse-attention flow, streaming the output to stdout and a one-line summary to stderr.
#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <vector>

#include "command_registry.h"
#include "vortex/engine/device.h"
#include "vortex/model/generation.h"

namespace {

struct GenerateArgs {
  std::string model;
  std::string device = "auto";
  vortex::GenerationRequest request;
  vortex::FlowOptions flow;
  std::string kv_dtype = "f32";
  int32_t prefill_chunk = 512;
  bool no_thinking = false;
};

int run_generate(GenerateArgs& args) {
  auto fail = [](const vortex::Status& s) {
    fmt::print(stderr, "error: {}\n", s.to_string());
    return 1;
  };
  vortex::GeneratorOptions options;
  const auto dtype = vortex::parse_dtype(args.kv_dtype);
  if (!dtype || (*dtype != vortex::DType::kF32 && *dtype != vortex::DType::kBF16)) {
    return fail(
        vortex::invalid_argument("--kv-dtype must be f32 or bf16, got '" + args.kv_dtype + "'"));
  }
  options.kv_dtype = *dtype;
  options.prefill_chunk = args.prefill_chunk;
  const auto device = vortex::engine::parse_device(args.device);
  if (!device) return fail(device.status());
  if (device->is_cuda()) options.cuda_device = device->ordinal;
  auto sparse = vortex::make_sparse_config(args.flow);
  if (!sparse) return fail(sparse.status());
  args.request.sparse = std::move(sparse).value();
  args.request.enable_thinking = !args.no_thinking;
  if (auto s = args.request.sampling.validate(); !s.is_ok()) return fail(s);

  auto generator = vortex::Generator::load(args.model, options);
  if (!generator) return fail(generator.status());
  auto result = (*generator)->generate(args.request, [](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!result) return fail(result.status());
  const bool sparse_flow = args.request.sparse.program != nullptr;
  fmt::print(stderr,
             "[{}] prompt {} tokens, generated {} tokens ({}), prefill {:.2f} s, decode {:.1f} "
             "tok/s, flow {}, selected pages {:.3f}\n",
             (*generator)->config().name, result->prompt_ids.size(), result->output_ids.size(),
             result->finish_reason, result->prefill_seconds, result->decode_tokens_per_second(),
             sparse_flow ? args.flow.flow : std::string("dense"), result->selected_fraction());
  return 0;
}

}  // namespace

VORTEX_REGISTER_COMMAND(generate, 20, [](CLI::App& app, int* exit_code) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate",
                                 "generate text from a prompt (one request, on the CPU or a GPU)");
  cmd->add_option("--model", args->model,
                  "a .gguf file, a Hugging Face directory, 'smollm2-135m' or synthetic:<preset>")
      ->required();
  cmd->add_option("--device", args->device, "cpu, cuda, cuda:N or auto (the GPU when there is one)")
      ->capture_default_str();
  cmd->add_option("--prompt", args->request.prompt, "the prompt (the user message with --chat)")
      ->required();
  cmd->add_flag("--chat", args->request.chat, "render the prompt with the model's chat template");
  cmd->add_option("--system", args->request.system, "chat: the system message");
  cmd->add_flag("--no-thinking", args->no_thinking,
                "chat, Qwen3: answer without a reasoning block");
  // Flow and budget.
  auto& b = args->flow.budget;
  cmd->add_option("--flow", args->flow.flow,
                  "sparse-attention flow: a built-in name or a .json file")
      ->default_str("dense");
  cmd->add_option("--topk-val", b.topk_val, "pages selected by score per row")
      ->capture_default_str();
  cmd->add_option("--topk-ratio", b.topk_ratio, "budget as a fraction of the row's pages")
      ->capture_default_str();
  cmd->add_option("--bos", b.bos, "leading (sink) pages always kept")->capture_default_str();
  cmd->add_option("--eos", b.eos, "trailing (recent) pages always kept")->capture_default_str();
  cmd->add_option("--layers-skip", b.layers_skip, "layers that stay dense, e.g. 0,1")
      ->delimiter(',');
  cmd->add_option("--block-size", b.block_size, "page size P (power of two)")
      ->capture_default_str();
  cmd->add_option("--policy", args->flow.policy,
                  "budget expression over pages, topk_val, topk_ratio, bos, eos, layer");
  // Sampling.
  auto& s = args->request.sampling;
  cmd->add_option("--max-tokens", s.max_tokens, "tokens to generate at most")
      ->capture_default_str();
  cmd->add_option("--temperature", s.temperature, "0 is greedy")->capture_default_str();
  cmd->add_option("--top-p", s.top_p, "nucleus sampling mass")->capture_default_str();
  cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0: off)")
      ->capture_default_str();
  cmd->add_option("--min-p", s.min_p, "keep tokens with p >= min_p * p_max")->capture_default_str();
  cmd->add_option("--repetition-penalty", s.repetition_penalty, "HF-style repetition penalty")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", s.frequency_penalty)->capture_default_str();
  cmd->add_option("--presence-penalty", s.presence_penalty)->capture_default_str();
  cmd->add_option("--seed", s.seed, "sampling seed")->capture_default_str();
  cmd->add_option("--stop", s.stop, "stop string (repeatable)");
  cmd->add_flag("--ignore-eos", s.ignore_eos, "keep generating past EOS");
  // Engine.
  cmd->add_option("--kv-dtype", args->kv_dtype, "KV cache dtype: f32 or bf16")
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", args->prefill_chunk, "prompt tokens per prefill step")
      ->capture_default_str();
  cmd->callback([args, exit_code] { *exit_code = run_generate(*args); });
});
