# Warnings for every target of the project; -Werror when PREFORK_WERROR is ON (CI path);
# ASan + UBSan when PREFORK_SANITIZE is ON.
option(PREFORK_WERROR "Treat warnings as errors" OFF)
option(PREFORK_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)

function(prefork_hygiene target)
  # -Wmismatched-new-delete: g++ 12 reports Asio's awaitable frames (allocated with
  # aligned_new, freed by their own operator delete) as mismatched at -O2; a false positive.
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wno-mismatched-new-delete)
  if(PREFORK_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  set_target_properties(${target} PROPERTIES CXX_EXTENSIONS OFF)
endfunction()

if(PREFORK_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
endif()
