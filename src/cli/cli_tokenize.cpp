// `qsweep tokenize (--model DIR | --tokenizer FILE) [--no-special] [--jsonl] [--decode]`:
// stdin text to ids (a JSON array on one line), or with --decode ids to text. --jsonl handles one
// JSON value per line, so tests/parity/tokenizer_parity.py can run every string in one process.
#include "cli.h"
#include "qsweep/util/error.h"
#include "qsweep/tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <iostream>
#include <iterator>

namespace qsweep::cli {
namespace {

using json = nlohmann::json;

struct TokenizeOptions {
  std::string model_dir;
  std::string tokenizer_file;
  bool no_special = false;
  bool keep_special = false;
  bool jsonl = false;
  bool decode = false;
  Deprecations deprecations;
};

std::vector<int32_t> parse_ids(const std::string& text, const std::string& where) {
  try {
    return json::parse(text).get<std::vector<int32_t>>();
  } catch (const json::exception& e) {
    fail("{}: expected a JSON array of token ids: {}", where, e.what());
  }
}

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

void run_lines(const Tokenizer& tokenizer, const TokenizeOptions& o) {
  std::string line;
  for (size_t number = 1; std::getline(std::cin, line); ++number) {
    const std::string where = fmt::format("stdin line {}", number);
    if (o.decode) {
      std::cout << dump(tokenizer.decode(parse_ids(line, where), !o.keep_special)) << '\n';
      continue;
    }
    json text;
    try {
      text = json::parse(line);
    } catch (const json::exception& e) {
      fail("{}: expected a JSON string: {}", where, e.what());
    }
    if (!text.is_string()) fail("{}: expected a JSON string, got {}", where, line.substr(0, 80));
    std::cout << dump(tokenizer.encode(text.get<std::string>(), !o.no_special)) << '\n';
  }
}

void run(const TokenizeOptions& o) {
  const Tokenizer tokenizer = o.model_dir.empty() ? Tokenizer::from_files(o.tokenizer_file)
                                                  : Tokenizer::from_model_dir(o.model_dir);
  std::ios::sync_with_stdio(false);
  if (o.jsonl) return run_lines(tokenizer, o);
  const std::string input{std::istreambuf_iterator<char>(std::cin), {}};
  if (o.decode)
    std::cout << tokenizer.decode(parse_ids(input, "stdin"), !o.keep_special);
  else
    std::cout << dump(tokenizer.encode(input, !o.no_special)) << '\n';
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Encode stdin to token ids (a JSON array), or decode ids with --decode");
  auto* model = cmd->add_option("--model", options->model_dir,
                                "Model directory: tokenizer.json and tokenizer_config.json, as "
                                "transformers loads them");
  auto* file = cmd->add_option("--tokenizer", options->tokenizer_file,
                               "A tokenizer.json alone, as tokenizers.Tokenizer.from_file loads it");
  model->excludes(file);
  CLI::Option* no_bos = cmd->add_flag("--no-bos,!--add-bos", options->no_special,
                                      "--no-bos: encode without the post-processor's special "
                                      "tokens (add_special_tokens=False); --add-bos, the default, "
                                      "with them");
  add_deprecated_flag(cmd, "--no-special", no_bos, options->no_special, options->deprecations);
  cmd->add_flag("--keep-special", options->keep_special,
                "Decode special tokens too (skip_special_tokens=False)");
  cmd->add_flag("--jsonl", options->jsonl,
                "One JSON string per stdin line (with --decode: one JSON array), one result per line");
  cmd->add_flag("--decode", options->decode, "stdin holds ids; print the text");
  cmd->callback([options, model, file] {
    if (model->empty() && file->empty()) fail("tokenize: pass --model DIR or --tokenizer FILE");
    options->deprecations.warn();
    run(*options);
  });
}

}  // namespace qsweep::cli
