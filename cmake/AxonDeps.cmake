# Dependencies, each found through its own package files: msgpack-c through
# its CMake package, Concurrency Kit, libconfig and libsodium (nonces and
# HMAC-SHA-256 for the handshake) through pkg-config.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(msgpack 4 CONFIG REQUIRED)
pkg_check_modules(CK REQUIRED IMPORTED_TARGET ck)
pkg_check_modules(LIBCONFIG REQUIRED IMPORTED_TARGET libconfig)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
# The metrics endpoint (dispatch/metrics_http.c).
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
# The network thread's receives through io_uring (dispatch/uring.c).
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)

# Boost.Context's fcontext (coroutine actors): C-callable assembly in
# libboost_context, found as a plain library (its CMake package wants C++).
find_library(AXON_BOOST_CONTEXT_LIBRARY NAMES boost_context REQUIRED)

# Message memory (serial/msgmem.h): mimalloc through its own mi_ API (the
# program's malloc stays glibc's: the library is dlopen'ed RTLD_LOCAL at run
# time, not linked, because Debian's libmimalloc.so also defines malloc and
# would replace it for the whole program), a per-thread pool, or libc. The numbers
# behind the default are in actor/NOTES.md.
set(AXON_MSG_ALLOCATOR "mimalloc" CACHE STRING "Message allocator: mimalloc, pool or libc")
set_property(CACHE AXON_MSG_ALLOCATOR PROPERTY STRINGS mimalloc pool libc)
if(NOT AXON_MSG_ALLOCATOR MATCHES "^(mimalloc|pool|libc)$")
  message(FATAL_ERROR "AXON_MSG_ALLOCATOR: unknown allocator '${AXON_MSG_ALLOCATOR}'")
endif()
string(TOUPPER "AXON_MSGMEM_${AXON_MSG_ALLOCATOR}" AXON_MSGMEM_DEFINE)

add_library(axon_deps INTERFACE)
target_link_libraries(axon_deps INTERFACE
  msgpackc PkgConfig::CK PkgConfig::LIBCONFIG PkgConfig::SODIUM PkgConfig::MHD PkgConfig::URING Threads::Threads
  ${AXON_BOOST_CONTEXT_LIBRARY})
if(AXON_MSG_ALLOCATOR STREQUAL "mimalloc")
  # Found at build time only for the name of the library to load.
  find_package(mimalloc 2 CONFIG REQUIRED)
  get_target_property(AXON_MIMALLOC_SONAME mimalloc IMPORTED_SONAME_RELWITHDEBINFO)
  if(NOT AXON_MIMALLOC_SONAME)
    get_target_property(AXON_MIMALLOC_SONAME mimalloc IMPORTED_SONAME)
  endif()
  if(NOT AXON_MIMALLOC_SONAME)
    set(AXON_MIMALLOC_SONAME "libmimalloc.so.2")
  endif()
  target_link_libraries(axon_deps INTERFACE ${CMAKE_DL_LIBS})
  list(APPEND AXON_MSGMEM_DEFINE "AXON_MIMALLOC_SONAME=\"${AXON_MIMALLOC_SONAME}\"")
endif()
install(TARGETS axon_deps EXPORT axon-targets)

if(AXON_BUILD_TESTS)
  pkg_check_modules(CRITERION REQUIRED IMPORTED_TARGET criterion)
endif()
