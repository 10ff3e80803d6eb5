#include "text/chat_template/chat_template.h"

#include "core/mapped_file.h"
#include "text/chat_template/budget.h"
#include "text/chat_template/evaluator.h"
#include "text/chat_template/lexer.h"
#include "text/chat_template/parser.h"

namespace tern {

struct ChatTemplate::Impl {
  std::string source_name;
  std::string source;
  jinja::Body body;
  ChatTemplateLimits limits;
};

Result<ChatTemplate> ChatTemplate::parse(const std::string& source, const std::string& source_name,
                                         const ChatTemplateLimits& limits) {
  auto tokens = jinja::tokenize(source);
  if (!tokens.is_ok()) return tokens.status().with_context(source_name);
  auto body = jinja::parse_template(tokens.value(), limits.max_nesting);
  if (!body.is_ok()) return body.status().with_context(source_name);
  auto impl = std::make_shared<Impl>();
  impl->source_name = source_name;
  impl->source = source;
  impl->body = std::move(body).value();
  impl->limits = limits;
  ChatTemplate t;
  t.impl_ = std::move(impl);
  return t;
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& context) const {
  if (!impl_) return Status::error("chat template: render called on an empty template");
  if (!context.is_object()) return Status::error(impl_->source_name + ": render context must be a JSON object");
  // The budget outlives the scopes: the built-in functions hold it, and it empties the namespaces last.
  jinja::Budget budget(impl_->limits);
  std::string out;
  try {
    auto globals = std::make_shared<jinja::Scope>();
    jinja::add_global_functions(*globals, budget);
    for (auto it = context.begin(); it != context.end(); ++it)
      globals->vars[it.key()] = jinja::from_json(it.value(), budget);
    jinja::render_body(impl_->body, globals, out, budget);
  } catch (const jinja::TemplateError& e) {
    return Status::error(impl_->source_name + ": " + e.what());
  } catch (const std::exception& e) {
    return Status::error(impl_->source_name + ": " + e.what());
  }
  return out;
}

const std::string& ChatTemplate::source() const {
  static const std::string kEmpty;
  return impl_ ? impl_->source : kEmpty;
}

Result<ModelChatTemplate> load_chat_template(const std::string& model_dir, const ChatTemplateLimits& limits) {
  const std::string path = model_dir + "/tokenizer_config.json";
  TERN_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  nlohmann::json cfg = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded() || !cfg.is_object()) return Status::error(path + ": not a JSON object");
  if (!cfg.contains("chat_template")) return Status::error(path + ": no chat_template");
  const nlohmann::json& ct = cfg["chat_template"];
  std::string source;
  if (ct.is_string()) {
    source = ct.get<std::string>();
  } else if (ct.is_array()) {
    // The named form: [{"name": "default", "template": "..."}, {"name": "tool_use", ...}].
    for (auto& entry : ct)
      if (entry.is_object() && entry.contains("name") && entry["name"] == "default" && entry.contains("template") &&
          entry["template"].is_string())
        source = entry["template"].get<std::string>();
    if (source.empty()) return Status::error(path + ": chat_template list has no \"default\" entry");
  } else {
    return Status::error(path + ": chat_template must be a string or a list of named templates");
  }
  TERN_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::parse(source, path, limits));
  nlohmann::json special = nlohmann::json::object();
  for (auto it = cfg.begin(); it != cfg.end(); ++it) {
    const std::string& key = it.key();
    if (key.size() < 6 || key.compare(key.size() - 6, 6, "_token") != 0) continue;
    if (it.value().is_string()) {
      special[key] = it.value();
    } else if (it.value().is_object() && it.value().contains("content") && it.value()["content"].is_string()) {
      special[key] = it.value()["content"];  // AddedToken form
    }
  }
  return ModelChatTemplate{std::move(tmpl), std::move(special)};
}

}  // namespace tern
