# What an install gives users stays lean: the installed libprefork.a and programs keep
# their symbols (linking, backtraces) but not their debug info, which in the build's
# RelWithDebInfo (-g) is most of their size (libprefork.a: 110 MB with it, 9 MB without;
# preforkd 34 MB, 2 MB) and would land in every program linked with the library.
# The build tree keeps it for prefork's own debugging; PREFORK_INSTALL_DEBUG_INFO=ON
# installs it too.
option(PREFORK_INSTALL_DEBUG_INFO "Keep the debug info in the installed library and programs" OFF)

# Strips the debug info of `target` once installed in `directory` (relative to the prefix
# given at install time: cmake --install BUILD --prefix P).
function(prefork_install_without_debug_info target directory)
  if(PREFORK_INSTALL_DEBUG_INFO OR NOT CMAKE_STRIP)
    return()
  endif()
  install(CODE "execute_process(COMMAND \"${CMAKE_STRIP}\" --strip-debug
    \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${directory}/$<TARGET_FILE_NAME:${target}>\" COMMAND_ERROR_IS_FATAL ANY)")
endfunction()
