// TEMPORARY stub (cli3 branch only, deleted before merge): renders only docs-llama-28m's ChatML template.
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "model/chat_template/chat_template.h"

namespace tern {

struct ChatTemplate::Impl {
  std::string source;
};

Result<ChatTemplate> ChatTemplate::parse(const std::string& source, const std::string& source_name) {
  if (source.find("<|im_start|>") == std::string::npos) return Status::error(source_name + ": stub handles only ChatML");
  ChatTemplate t;
  t.impl_ = std::make_shared<Impl>(Impl{source});
  return t;
}

Result<std::string> ChatTemplate::render(const nlohmann::json& ctx) const {
  std::string out;
  for (const auto& m : ctx["messages"]) {
    out += "<|im_start|>" + m["role"].get<std::string>() + "\n" + m["content"].get<std::string>() + "<|im_end|>\n";
  }
  if (ctx.value("add_generation_prompt", false)) out += "<|im_start|>assistant\n";
  return out;
}

Result<ModelChatTemplate> load_chat_template(const std::string& model_dir) {
  TERN_ASSIGN_OR_RETURN(auto text, read_text_file(model_dir + "/tokenizer_config.json"));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("chat_template") || !j["chat_template"].is_string())
    return Status::error(model_dir + ": no chat_template");
  TERN_ASSIGN_OR_RETURN(auto t, ChatTemplate::parse(j["chat_template"].get<std::string>()));
  nlohmann::json sp = nlohmann::json::object();
  for (const char* k : {"bos_token", "eos_token", "pad_token"})
    if (j.contains(k) && j[k].is_string()) sp[k] = j[k];
  return ModelChatTemplate{std::move(t), std::move(sp)};
}

}  // namespace tern
