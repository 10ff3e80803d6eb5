# The web page of `tern serve` (webui/): bundled by esbuild (webui/build.mjs) into one HTML file whose bytes
# are compiled into tern_lib (src/api/webui_asset.h). The bundle step runs on every build and is cheap when
# nothing changed (cmake/webui_bundle.cmake compares time stamps; the generated source is rewritten only when
# its bytes change). Without node or webui/node_modules (`npm ci --prefix webui`, scripts/setup runs it) the
# source is a stub and / answers 503 saying how to build the page: a fresh clone still configures and builds.
find_program(TERN_NODE node)
set(TERN_WEBUI_CPP ${CMAKE_BINARY_DIR}/generated/webui_asset.cpp)
add_custom_target(tern_webui_bundle
  COMMAND ${CMAKE_COMMAND} -DNODE=${TERN_NODE} -DWEBUI_DIR=${CMAKE_SOURCE_DIR}/webui
          -DOUT_DIR=${CMAKE_BINARY_DIR}/webui -DCPP=${TERN_WEBUI_CPP} -P ${CMAKE_SOURCE_DIR}/cmake/webui_bundle.cmake
  BYPRODUCTS ${TERN_WEBUI_CPP}
  COMMENT "Bundling the web UI (webui/)"
  VERBATIM)
target_sources(tern_lib PRIVATE ${TERN_WEBUI_CPP})
add_dependencies(tern_lib tern_webui_bundle)
