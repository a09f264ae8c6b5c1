# Dependencies, each found through its own package files: msgpack-c through
# its CMake package, Concurrency Kit, libconfig and libsodium (nonces and
# HMAC-SHA-256 for the handshake) through pkg-config.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(msgpack 4 CONFIG REQUIRED)
pkg_check_modules(CK REQUIRED IMPORTED_TARGET ck)
pkg_check_modules(LIBCONFIG REQUIRED IMPORTED_TARGET libconfig)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)

add_library(axon_deps INTERFACE)
target_link_libraries(axon_deps INTERFACE
  msgpackc PkgConfig::CK PkgConfig::LIBCONFIG PkgConfig::SODIUM Threads::Threads)
install(TARGETS axon_deps EXPORT axon-targets)

if(AXON_BUILD_TESTS)
  pkg_check_modules(CRITERION REQUIRED IMPORTED_TARGET criterion)
endif()
