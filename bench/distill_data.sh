#!/usr/bin/env bash
# Training text for `tern distill` (docs/distill.md, docs/benchmarks.md): documentation from Debian's own
# packages (English pages only), the kind of text docs-llama-28m learned from. Installs python3-doc, postgresql-doc and
# debian-handbook with apt-get (needs root and the Debian mirror), extracts the plain text of their HTML
# pages (python3's html.parser), drops every paragraph that also appears in docs-val.txt (the evaluation
# text, compared after whitespace normalisation, and any paragraph containing one of docs-val's long
# lines) and repeated paragraphs, and writes one text file, paragraphs separated by blank lines.
# usage: bench/distill_data.sh OUT.txt [DOCS_VAL (default ../shared/data/docs-val.txt)]
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: bench/distill_data.sh OUT.txt [DOCS_VAL]}"
val="${2:-$src/../shared/data/docs-val.txt}"
pkgs=(python3-doc postgresql-doc debian-handbook)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Every HTML file the packages installed (postgresql-doc is a metapackage: follow its dependencies).
files="$(mktemp)"
trap 'rm -f "$files"' EXIT
deps="$(apt-cache depends --installed postgresql-doc 2>/dev/null | awk '/Depends:/ {print $2}' | grep '^postgresql-doc' || true)"
# English only: debian-handbook ships every translation under html/<lang>/; keep en-US.
for p in "${pkgs[@]}" $deps; do dpkg -L "$p" 2>/dev/null | grep -E '\.html?$' || true; done |
  grep -Ev '/debian-handbook/html/[^/]+/' | sort -u > "$files"
dpkg -L debian-handbook 2>/dev/null | grep -E '/debian-handbook/html/en-US/.*\.html?$' >> "$files" || true
python3 - "$files" "$val" "$out" <<'PY'
import html.parser, re, sys

files, val_path, out_path = sys.argv[1:4]
BLOCK = {"p", "div", "li", "dt", "dd", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section",
         "blockquote", "br", "ul", "ol", "dl", "title", "td", "th"}
SKIP = {"script", "style", "head", "nav"}

class Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paras, self.cur, self.skip, self.pre = [], [], 0, 0
    def flush(self):
        t = "".join(self.cur)
        self.cur = []
        t = t.strip("\n") if self.pre else re.sub(r"\s+", " ", t).strip()
        if t:
            self.paras.append(t)
    def handle_starttag(self, tag, attrs):
        if tag in SKIP: self.skip += 1
        elif tag in BLOCK: self.flush()
        if tag == "pre": self.pre += 1
    def handle_endtag(self, tag):
        if tag in SKIP: self.skip = max(0, self.skip - 1)
        elif tag in BLOCK: self.flush()
        if tag == "pre": self.pre = max(0, self.pre - 1)
    def handle_data(self, data):
        if not self.skip: self.cur.append(data)

def norm(s):
    return re.sub(r"\s+", " ", s).strip()

val = open(val_path, encoding="utf-8", errors="replace").read()
val_paras = {norm(p) for p in re.split(r"\n\s*\n", val) if norm(p)}
val_lines = {norm(l) for l in val.splitlines() if len(norm(l)) >= 40}
seen, kept, dropped_val, dropped_dup, nbytes = set(), [], 0, 0, 0
for path in open(files).read().split():
    try:
        raw = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        continue
    p = Text()
    p.feed(raw)
    p.flush()
    for para in p.paras:
        n = norm(para)
        if len(n) < 20 or sum(c < "\x80" for c in n) < 0.95 * len(n):  # short, or not English text
            continue
        if n in val_paras or any(l in val_lines for l in (norm(x) for x in para.splitlines())):
            dropped_val += 1
            continue
        if n in seen:
            dropped_dup += 1
            continue
        seen.add(n)
        kept.append(para)
        nbytes += len(para) + 2
with open(out_path, "w", encoding="utf-8") as f:
    f.write("\n\n".join(kept) + "\n")
print(f"{out_path}: {len(kept)} paragraphs, {nbytes / 1e6:.1f} MB; dropped {dropped_val} that appear in "
      f"{val_path}, {dropped_dup} repeated", file=sys.stderr)
PY
