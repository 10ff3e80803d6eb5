// Chat templates: the Jinja `chat_template` of a model's tokenizer_config.json, rendered the way
// Hugging Face (transformers / @huggingface/jinja) renders it. A template that uses a construct this
// renderer does not support fails to parse with an error naming the construct and its line — it never
// renders something different.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "text/chat_template/limits.h"

namespace tern {

class ChatTemplate {
 public:
  // Parses template source; `source_name` names it in errors ("<dir>/tokenizer_config.json"). The limits bound
  // this parse and every render of the template (limits.h).
  static Result<ChatTemplate> parse(const std::string& source, const std::string& source_name = "chat_template",
                                    const ChatTemplateLimits& limits = {});

  // Renders with a context such as {"messages": [{"role": "user", "content": "hi"}],
  // "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "tools": [...]}.
  // Errors: raise_exception() in the template, a runtime type error, or a limit hit ("template limit: ..."), as
  // one line naming the source and the template line. Thread-safe: a render shares nothing with another.
  Result<std::string> render(const nlohmann::ordered_json& context) const;

  // The template text as parsed (tool-call and reasoning formats are read from it).
  const std::string& source() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// The model's chat template and the special-token strings the template refers to (bos_token,
// eos_token, ...) from DIR/tokenizer_config.json (a string chat_template, or the named list form
// where "default" is used).
struct ModelChatTemplate {
  ChatTemplate chat_template;
  nlohmann::ordered_json special_tokens;  // {"bos_token": "...", "eos_token": "...", ...} to merge into the context
};
Result<ModelChatTemplate> load_chat_template(const std::string& model_dir, const ChatTemplateLimits& limits = {});

}  // namespace tern
