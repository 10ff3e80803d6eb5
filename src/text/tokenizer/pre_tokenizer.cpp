#include "text/tokenizer/pre_tokenizer.h"

#include <algorithm>

#include "text/tokenizer/regex.h"
#include "text/tokenizer/utf8.h"

namespace tern::tok {

// What ByteLevel(use_regex = true) splits with (the GPT-2 pattern).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

struct Segment {
  size_t begin, end;
  bool is_match;
};

// Matches and the gaps between them, covering subject[0, len) in order; empty matches are dropped.
void find_segments(const pcre2_code* code, pcre2_match_data* md, const char* subject, size_t len,
                   std::vector<Segment>& segs) {
  segs.clear();
  size_t pos = 0, last = 0;
  while (pos < len) {
    const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(subject), len, pos, PCRE2_NO_UTF_CHECK, md,
                               nullptr);
    if (rc < 0) break;  // no match (or a resource limit: the rest stays one gap)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t s = ov[0], e = ov[1];
    if (e <= s) {  // empty match: step over one character
      size_t clen = 1;
      utf8_step(reinterpret_cast<const uint8_t*>(subject) + s, len - s, &clen);
      pos = s + clen;
      continue;
    }
    if (s > last) segs.push_back({last, s, false});
    segs.push_back({s, e, true});
    last = pos = e;
  }
  if (last < len) segs.push_back({last, len, false});
}

// Applies a split behaviour to segments (offsets relative to `base`), appending the resulting pieces.
void apply_behavior(const std::vector<Segment>& segs, SplitBehavior behavior, bool invert, size_t base,
                    std::vector<Piece>& out) {
  const size_t first = out.size();
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::kRemoved:
      for (const auto& s : segs)
        if (s.is_match == invert) out.push_back({base + s.begin, base + s.end, false});
      break;
    case SplitBehavior::kIsolated:
      for (const auto& s : segs) out.push_back({base + s.begin, base + s.end, false});
      break;
    case SplitBehavior::kMergedWithPrevious:  // a match is glued to the piece before it
      for (const auto& s : segs) {
        const bool m = s.is_match != invert;
        if (m && !prev_match && out.size() > first) out.back().end = base + s.end;
        else out.push_back({base + s.begin, base + s.end, false});
        prev_match = m;
      }
      break;
    case SplitBehavior::kMergedWithNext:  // a match is glued to the piece after it
      for (size_t k = segs.size(); k-- > 0;) {
        const auto& s = segs[k];
        const bool m = s.is_match != invert;
        if (m && !prev_match && out.size() > first) out.back().begin = base + s.begin;
        else out.push_back({base + s.begin, base + s.end, false});
        prev_match = m;
      }
      std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
      break;
    case SplitBehavior::kContiguous:  // runs of matches (and runs of gaps) become one piece
      for (const auto& s : segs) {
        const bool m = s.is_match != invert;
        if (m == prev_match && out.size() > first) out.back().end = base + s.end;
        else out.push_back({base + s.begin, base + s.end, false});
        prev_match = m;
      }
      break;
  }
}

}  // namespace

Result<PreTokenizer> PreTokenizer::build(const std::vector<PreTokenizerStep>& steps) {
  PreTokenizer p;
  for (const auto& step : steps) {
    if (p.byte_level_)
      return Status::error("unsupported pre_tokenizer: a step after ByteLevel (it would see byte-level text)");
    if (const auto* s = std::get_if<SplitSpec>(&step)) {
      Step st;
      TERN_ASSIGN_OR_RETURN(st.regex, CompiledRegex::compile(s->pattern, !s->is_regex));
      st.behavior = s->behavior;
      st.invert = s->invert;
      p.steps_.push_back(std::move(st));
    } else if (const auto* m = std::get_if<MetaspaceSpec>(&step)) {
      Step st;
      st.kind = Step::Kind::kMetaspace;
      st.replacement = m->replacement;
      st.prepend = m->prepend_scheme;
      p.steps_.push_back(st);
      if (m->split) {  // cut before each replacement: a literal Split, MergedWithNext
        Step cut;
        TERN_ASSIGN_OR_RETURN(cut.regex, CompiledRegex::compile(m->replacement, true));
        cut.behavior = SplitBehavior::kMergedWithNext;
        p.steps_.push_back(std::move(cut));
      }
    } else {
      const auto& b = std::get<ByteLevelPreSpec>(step);
      if (b.add_prefix_space) p.steps_.push_back(Step{Step::Kind::kPrefixSpace, nullptr, {}, false});
      if (b.use_regex) {
        Step st;
        TERN_ASSIGN_OR_RETURN(st.regex, CompiledRegex::compile(kGpt2Pattern, false));
        p.steps_.push_back(std::move(st));
      }
      p.byte_level_ = true;
    }
  }
  return p;
}

Piece PreTokenizer::metaspace(const Step& st, std::string& buf, const Piece& pc, std::string& tmp) {
  const std::string_view text = std::string_view(buf).substr(pc.begin, pc.end - pc.begin);
  tmp.clear();
  // Hugging Face prepends only to non-empty text that does not start with the replacement once spaces are
  // replaced.
  const bool prepend = !text.empty() && !pc.cont && text[0] != ' ' &&
                       text.compare(0, st.replacement.size(), st.replacement) != 0 &&
                       (st.prepend == PrependScheme::kAlways || (st.prepend == PrependScheme::kFirst && pc.at_start));
  if (prepend) tmp = st.replacement;
  for (char c : text) {
    if (c == ' ') tmp += st.replacement;
    else tmp += c;
  }
  const size_t at = buf.size();
  buf += tmp;
  return {at, buf.size(), false, pc.at_start, pc.cont};
}

void PreTokenizer::split(std::string& buf, std::vector<Piece>& pieces, bool at_start) const {
  pieces.clear();
  // Valid runs and invalid subparts.
  const auto* p = reinterpret_cast<const uint8_t*>(buf.data());
  size_t run = 0, i = 0;
  while (i < buf.size()) {
    const size_t ok = utf8_valid_prefix(std::string_view(buf).substr(i));
    i += ok;
    if (i >= buf.size()) break;
    size_t bad = 1;
    utf8_step(p + i, buf.size() - i, &bad);
    if (i > run) pieces.push_back({run, i, false, run == 0 && at_start, run > 0});
    pieces.push_back({i, i + bad, true});
    i += bad;
    run = i;
  }
  if (run < buf.size()) pieces.push_back({run, buf.size(), false, run == 0 && at_start, run > 0});

  MatchData md;
  std::string tmp;
  std::vector<Piece> next;
  std::vector<Segment> segs;
  for (const Step& st : steps_) {
    next.clear();
    for (const Piece& pc : pieces) {
      if (pc.opaque) {
        next.push_back(pc);
      } else if (st.kind == Step::Kind::kPrefixSpace) {
        if (buf[pc.begin] == ' ' || pc.cont) {
          next.push_back(pc);
        } else {
          const size_t at = buf.size(), len = pc.end - pc.begin;
          buf.reserve(at + 1 + len);  // no reallocation below: the append reads from buf itself
          buf += ' ';
          buf.append(buf.data() + pc.begin, len);
          next.push_back({at, buf.size(), false, pc.at_start, false});
        }
      } else if (st.kind == Step::Kind::kMetaspace) {
        next.push_back(metaspace(st, buf, pc, tmp));
      } else {
        const size_t first = next.size();
        find_segments(st.regex->code(), md.md, buf.data() + pc.begin, pc.end - pc.begin, segs);
        apply_behavior(segs, st.behavior, st.invert, pc.begin, next);
        if (next.size() > first && next[first].begin == pc.begin) {
          next[first].at_start = pc.at_start;
          next[first].cont = pc.cont;
        }
      }
    }
    pieces.swap(next);
  }
}

}  // namespace tern::tok
