# Writes the version header (cmake -P, at configure time and again on every build): the tree's git
# SHA, with "-dirty" when tracked files differ from HEAD, so every binary and every JSON it writes
# names the code it was built from. configure_file leaves the header untouched (nothing rebuilds)
# while the SHA stays the same.
#   -DSRC=<source dir> -DIN=<version.h.in> -DOUT=<version.h> -DPROJECT_VERSION=<x.y.z>
execute_process(COMMAND git rev-parse --short=12 HEAD
  WORKING_DIRECTORY ${SRC}
  OUTPUT_VARIABLE VORTEX_GIT_SHA OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT VORTEX_GIT_SHA)
  set(VORTEX_GIT_SHA "unknown")
else()
  execute_process(COMMAND git diff --quiet HEAD --
    WORKING_DIRECTORY ${SRC} RESULT_VARIABLE dirty OUTPUT_QUIET ERROR_QUIET)
  if(NOT dirty EQUAL 0)
    string(APPEND VORTEX_GIT_SHA "-dirty")
  endif()
endif()
configure_file(${IN} ${OUT} @ONLY)
