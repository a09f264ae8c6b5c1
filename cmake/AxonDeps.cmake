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

# Boost.Context's fcontext (coroutine actors): C-callable assembly in
# libboost_context, found as a plain library (its CMake package wants C++).
find_library(AXON_BOOST_CONTEXT_LIBRARY NAMES boost_context REQUIRED)

add_library(axon_deps INTERFACE)
target_link_libraries(axon_deps INTERFACE
  msgpackc PkgConfig::CK PkgConfig::LIBCONFIG PkgConfig::SODIUM PkgConfig::MHD Threads::Threads
  ${AXON_BOOST_CONTEXT_LIBRARY})
install(TARGETS axon_deps EXPORT axon-targets)

if(AXON_BUILD_TESTS)
  pkg_check_modules(CRITERION REQUIRED IMPORTED_TARGET criterion)
endif()
