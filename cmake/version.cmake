# Writes qsweep_version.h with the current git commit; run at every build (not only at configure)
# so a store records the commit its binary was built from. Rewrites the file only on change.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
  OUTPUT_VARIABLE QSWEEP_GIT_HASH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY ${SOURCE_DIR}
  OUTPUT_VARIABLE dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT QSWEEP_GIT_HASH)
  set(QSWEEP_GIT_HASH unknown)
elseif(dirty)
  set(QSWEEP_GIT_HASH "${QSWEEP_GIT_HASH}-dirty")
endif()
configure_file(${SOURCE_DIR}/cmake/version.h.in ${OUTPUT}.tmp @ONLY)
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
