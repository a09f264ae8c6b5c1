# cmake --install: headers under include/axon/, both libraries, a CMake
# package (find_package(axon) gives axon::axon and axon::axon_static) and
# axon.pc for pkg-config.
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/axon
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")
install(TARGETS axon axon_static EXPORT axon-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT axon-targets NAMESPACE axon::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/axon)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/axon-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/axon-config.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/axon)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/axon-config-version.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${CMAKE_CURRENT_BINARY_DIR}/axon-config.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/axon-config-version.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/axon)

# The prefix is derived from the .pc file's own location, so that
# `cmake --install --prefix DIR` gives a correct axon.pc for any DIR.
file(RELATIVE_PATH AXON_PC_TO_PREFIX
  "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
string(REGEX REPLACE "/$" "" AXON_PC_TO_PREFIX "${AXON_PC_TO_PREFIX}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/axon.pc.in ${CMAKE_CURRENT_BINARY_DIR}/axon.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/axon.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# tools/axon-top, the live view of a system's metrics endpoint.
install(PROGRAMS ${PROJECT_SOURCE_DIR}/tools/axon-top DESTINATION ${CMAKE_INSTALL_BINDIR})
