// Markdown (marked, GitHub flavour) sanitized by DOMPurify — model output is untrusted text, and raw HTML
// or javascript: links in it must not run — then code blocks highlighted by highlight.js.
import DOMPurify from 'dompurify';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import typescript from 'highlight.js/lib/languages/typescript';
import { Marked } from 'marked';
import { useEffect, useMemo, useRef } from 'preact/hooks';

for (const [name, lang] of Object.entries({ bash, c, cpp, javascript, json, python, rust, typescript })) {
  hljs.registerLanguage(name, lang);
}

const marked = new Marked({ gfm: true, breaks: false, async: false });

// Links open in a new tab and pass no referrer.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

export function renderMarkdown(text) {
  return DOMPurify.sanitize(marked.parse(text || ''), { USE_PROFILES: { html: true } });
}

function highlight(root) {
  for (const code of root.querySelectorAll('pre code')) {
    const lang = /language-([\w+-]+)/.exec(code.className);
    if (lang && hljs.getLanguage(lang[1])) {
      // highlightElement escapes the text itself; the block's text is already sanitized.
      hljs.highlightElement(code);
    } else {
      code.classList.add('hljs');
    }
  }
}

export function Markdown({ text }) {
  const ref = useRef(null);
  const html = useMemo(() => renderMarkdown(text), [text]);
  useEffect(() => {
    if (ref.current) highlight(ref.current);
  }, [html]);
  return <div class="markdown" ref={ref} dangerouslySetInnerHTML={{ __html: html }} />;
}
