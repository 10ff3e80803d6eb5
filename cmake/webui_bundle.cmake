# Build-time step of cmake/webui.cmake (cmake -P): NODE, WEBUI_DIR, OUT_DIR, CPP.
# With node and the installed packages: runs webui/build.mjs when a source is newer than the last bundle.
# Without them: writes the stub asset (an empty page: / answers 503 with how to build it), once.
set(stamp ${OUT_DIR}/bundle.stamp)
if(NODE AND EXISTS ${WEBUI_DIR}/node_modules/esbuild/package.json)
  file(GLOB_RECURSE inputs ${WEBUI_DIR}/src/*)
  list(APPEND inputs ${WEBUI_DIR}/build.mjs ${WEBUI_DIR}/package-lock.json ${WEBUI_DIR}/node_modules/.package-lock.json)
  set(stale FALSE)
  if(NOT EXISTS ${stamp} OR NOT EXISTS ${CPP})
    set(stale TRUE)
  endif()
  foreach(f IN LISTS inputs)
    if(NOT stale AND EXISTS ${f} AND ${f} IS_NEWER_THAN ${stamp})
      set(stale TRUE)
    endif()
  endforeach()
  if(stale)
    execute_process(COMMAND ${NODE} ${WEBUI_DIR}/build.mjs --out-dir ${OUT_DIR} --cpp ${CPP}
                    WORKING_DIRECTORY ${WEBUI_DIR} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "webui/build.mjs failed (${rc}): fix webui/src, or remove webui/node_modules to build tern without the web UI")
    endif()
    file(TOUCH ${stamp})
  endif()
elseif(NOT EXISTS ${CPP})
  file(WRITE ${CPP} "// The web UI was not bundled (no node, or no webui/node_modules: `npm ci --prefix webui`).\n"
                    "#include \"api/webui_asset.h\"\n\nnamespace tern::api {\nWebUiAsset webui_asset() { return {}; }\n}  // namespace tern::api\n")
endif()
