#include "line_reader.h"

#include <histedit.h>

#include <clocale>
#include <cstdio>
#include <iostream>

namespace tern::cli {

namespace {
char* prompt(EditLine*) { return const_cast<char*>("> "); }
}  // namespace

LineReader::LineReader(bool interactive) {
  if (!interactive) return;
  // libedit decodes typed UTF-8 by the locale's character type; the rest of tern never reads it.
  std::setlocale(LC_CTYPE, "");
  el_ = el_init("tern", stdin, stdout, stderr);
  hist_ = history_init();
  if (!el_ || !hist_) {  // no terminal after all: fall back to plain reads
    if (el_) el_end(el_);
    if (hist_) history_end(hist_);
    el_ = nullptr, hist_ = nullptr;
    return;
  }
  HistEvent ev;
  history(hist_, &ev, H_SETSIZE, 1000);
  history(hist_, &ev, H_SETUNIQUE, 1);
  el_set(el_, EL_EDITOR, "emacs");
  el_set(el_, EL_SIGNAL, 1);  // restore the terminal on Ctrl-C / Ctrl-Z
  el_set(el_, EL_PROMPT, &prompt);
  el_set(el_, EL_HIST, history, hist_);
  el_source(el_, nullptr);  // the user's ~/.editrc, as every libedit program reads it
}

LineReader::~LineReader() {
  if (el_) el_end(el_);
  if (hist_) history_end(hist_);
}

std::optional<std::string> LineReader::read() {
  std::string line;
  if (el_) {
    int n = 0;
    const char* s = el_gets(el_, &n);
    if (!s || n <= 0) return std::nullopt;
    line.assign(s, size_t(n));
  } else if (!std::getline(std::cin, line)) {
    return std::nullopt;
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line;
}

void LineReader::remember(const std::string& line) {
  if (!hist_ || line.empty()) return;
  HistEvent ev;
  history(hist_, &ev, H_ENTER, line.c_str());
}

}  // namespace tern::cli
