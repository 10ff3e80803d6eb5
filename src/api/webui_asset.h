// The web page `tern serve` answers at / (webui/, bundled by esbuild into one self-contained HTML file):
// its bytes, as is and gzipped, compiled in from a source generated at build time (cmake/webui.cmake).
// A checkout whose bundle was not built gets an empty asset: / then says how to build it.
#pragma once

#include <cstddef>

namespace tern::api {

struct WebUiAsset {
  const unsigned char* html = nullptr;
  size_t html_size = 0;
  const unsigned char* gzip = nullptr;  // the same bytes gzipped
  size_t gzip_size = 0;
  bool built() const { return html_size > 0; }
};

WebUiAsset webui_asset();

}  // namespace tern::api
