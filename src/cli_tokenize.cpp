// qsweep tokenize: stdin text to ids with a model's (or a file's) tokenizer, one JSON array per
// line; --jsonl for many strings in one process (tests/parity/tokenizer_parity.py), --decode for
// the way back.
#include "cli.h"
#include "qsweep/error.h"
#include "qsweep/tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>
#include <iterator>

namespace qsweep::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  std::string tokenizer;
  bool no_special = false;
  bool jsonl = false;
  bool decode = false;
};

Tokenizer open_tokenizer(const TokenizeArgs& a) {
  if (!a.model.empty()) return Tokenizer::from_model_dir(a.model);
  if (a.tokenizer.empty()) fail("give --model DIR or --tokenizer FILE");
  const auto config = std::filesystem::path(a.tokenizer).parent_path() / "tokenizer_config.json";
  return Tokenizer::from_files(a.tokenizer, std::filesystem::exists(config) ? config.string() : "");
}

std::string ids_line(const std::vector<int32_t>& ids) { return nlohmann::json(ids).dump(); }

std::string as_json_string(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void run(const TokenizeArgs& a) {
  const Tokenizer tok = open_tokenizer(a);
  if (!a.jsonl) {
    const std::string input{std::istreambuf_iterator<char>(std::cin), {}};
    if (a.decode) std::cout << tok.decode(nlohmann::json::parse(input).get<std::vector<int32_t>>(), false);
    else std::cout << ids_line(tok.encode(input, !a.no_special)) << "\n";
    return;
  }
  std::string line;
  for (int n = 1; std::getline(std::cin, line); ++n) {
    nlohmann::json item;
    try {
      item = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      fail("stdin line {}: not JSON ({})", n, e.what());
    }
    if (a.decode) std::cout << as_json_string(tok.decode(item.get<std::vector<int32_t>>(), false)) << "\n";
    else std::cout << ids_line(tok.encode(item.get<std::string>(), !a.no_special)) << "\n";
  }
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Text on stdin to token ids (JSON)");
  cmd->add_option("--model", a->model, "Model directory with tokenizer.json");
  cmd->add_option("--tokenizer", a->tokenizer, "A tokenizer.json file");
  cmd->add_flag("--no-special", a->no_special, "Skip the post-processor (no BOS)");
  cmd->add_flag("--jsonl", a->jsonl, "Each stdin line is a JSON string (or id array with --decode)");
  cmd->add_flag("--decode", a->decode, "Ids to text instead (special tokens kept)");
  cmd->callback([a] { run(*a); });
}

}  // namespace qsweep::cli
